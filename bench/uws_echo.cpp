// uWebSockets (C++) echo server for bench/run's optional `uwscpp` peer: the
// same settings as bench/uws_echo.mjs (no idle timeout, 16 MiB messages,
// with "deflate" the shared compressor and decompressor), built by
// bench/run from a checkout of uWebSockets with its uSockets submodule
// when UWS_SRC names one (nothing is downloaded). usage: uws_echo PORT [deflate]
#include "App.h"
#include <cstdlib>
#include <cstring>
#include <iostream>
int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    bool deflate = argc > 2 && !strcmp(argv[2], "deflate");
    struct PSD {};
    uWS::App().ws<PSD>("/*", {
        .compression = deflate ? uWS::CompressOptions(uWS::SHARED_COMPRESSOR | uWS::SHARED_DECOMPRESSOR) : uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 0,
        .maxBackpressure = 64 * 1024 * 1024,
        .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) { ws->send(message, opCode, true); },
    }).listen("127.0.0.1", port, [port](auto *ls) { if (ls) std::cout << "listening " << port << std::endl; else exit(1); }).run();
}
