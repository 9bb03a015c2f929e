/* A conformance suite for dx_conn, walking the areas Autobahn|Testsuite
 * covers (cases 1-7, 9 limits, 10), in both roles. Each table row gives the
 * frames the peer sends (masked when the peer is a client), the messages
 * that must be delivered, the frames dx_conn must answer with, and how the
 * connection must end. Every row is fed whole, one byte at a time and at
 * random split points. A round-trip property test closes the file. */
#include <duplex/conn.h>

#include "conn_test.h"
#include "test.h"

/* ---- frames as the peer sends them ------------------------------------- */

/* One frame of a row. `data` NULL means `len` bytes of the pattern 'a'..'z';
 * `trunc` keeps only the header (the payload never arrives). */
typedef struct tf {
    uint8_t on, fin, rsv, op;
    const char *data;
    size_t len;
    unsigned code; /* expected close frames: their code (0: empty payload) */
    uint8_t trunc;
} tf;

#define F(fin, op, s)                                                                              \
    { 1, fin, 0, op, s, sizeof(s) - 1, 0, 0 }
#define FR(fin, rsv, op, s)                                                                        \
    { 1, fin, rsv, op, s, sizeof(s) - 1, 0, 0 }
#define FP(fin, op, n)                                                                             \
    { 1, fin, 0, op, NULL, n, 0, 0 }
#define FT(fin, op, n)                                                                             \
    { 1, fin, 0, op, NULL, n, 0, 1 }
#define M(op, s)                                                                                   \
    { 1, 1, 0, op, s, sizeof(s) - 1, 0, 0 }
#define MP(op, n)                                                                                  \
    { 1, 1, 0, op, NULL, n, 0, 0 }
#define CLOSE(code)                                                                                \
    { 1, 1, 0, 8, NULL, 0, code, 0 }
#define PONG(s)                                                                                    \
    { 1, 1, 0, 10, s, sizeof(s) - 1, 0, 0 }
#define PONGP(n)                                                                                   \
    { 1, 1, 0, 10, NULL, n, 0, 0 }

#define T DX_OP_TEXT
#define B DX_OP_BINARY
#define C DX_OP_CONT
#define PING DX_OP_PING
#define PNG DX_OP_PONG
#define CLS DX_OP_CLOSE

typedef struct row {
    const char *name;
    tf in[16];
    tf msgs[12];
    tf out[16];
    int err;            /* first error dx_conn_recv returns */
    unsigned code;      /* on_close code; 0: must stay open */
    int clean;          /* on_close was_clean */
    uint64_t max;       /* max_message (0: default) */
    unsigned our_close; /* dx_conn_close(code) before the input */
} row;

/* clang-format off */
static const row rows[] = {
    /* 1 framing */
    {"1.1.1 text 0", {FP(1, T, 0)}, {MP(T, 0)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.2 text 125", {FP(1, T, 125)}, {MP(T, 125)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.3 text 126", {FP(1, T, 126)}, {MP(T, 126)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.4 text 127", {FP(1, T, 127)}, {MP(T, 127)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.5 text 128", {FP(1, T, 128)}, {MP(T, 128)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.6 text 65535", {FP(1, T, 65535)}, {MP(T, 65535)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.1.7 text 65536", {FP(1, T, 65536)}, {MP(T, 65536)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.1 binary 0", {FP(1, B, 0)}, {MP(B, 0)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.2 binary 125", {FP(1, B, 125)}, {MP(B, 125)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.3 binary 126", {FP(1, B, 126)}, {MP(B, 126)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.4 binary 127", {FP(1, B, 127)}, {MP(B, 127)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.5 binary 128", {FP(1, B, 128)}, {MP(B, 128)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.6 binary 65535", {FP(1, B, 65535)}, {MP(B, 65535)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.7 binary 65536", {FP(1, B, 65536)}, {MP(B, 65536)}, {{0}}, 0, 0, 0, 0, 0},
    {"1.2.8 binary with every byte", {F(1, B, "\x00\x01\x7f\x80\xfe\xff")}, {M(B, "\x00\x01\x7f\x80\xfe\xff")}, {{0}}, 0, 0, 0, 0, 0},
    {"1.3 several in a row", {F(1, T, "a"), F(1, B, "bc"), FP(1, T, 300)}, {M(T, "a"), M(B, "bc"), MP(T, 300)}, {{0}}, 0, 0, 0, 0, 0},
    /* 2 ping/pong */
    {"2.1 ping empty", {F(1, PING, "")}, {{0}}, {PONG("")}, 0, 0, 0, 0, 0},
    {"2.2 ping text", {F(1, PING, "Hello, world!")}, {{0}}, {PONG("Hello, world!")}, 0, 0, 0, 0, 0},
    {"2.3 ping binary", {F(1, PING, "\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}, {{0}}, {PONG("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}, 0, 0, 0, 0, 0},
    {"2.4 ping 125", {FP(1, PING, 125)}, {{0}}, {PONGP(125)}, 0, 0, 0, 0, 0},
    {"2.5 ping 126", {FP(1, PING, 126), F(1, T, "after")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"2.6 unsolicited pong", {F(1, PNG, "unsolicited")}, {{0}}, {{0}}, 0, 0, 0, 0, 0},
    {"2.7 unsolicited pong then ping", {F(1, PNG, "u"), F(1, PING, "p")}, {{0}}, {PONG("p")}, 0, 0, 0, 0, 0},
    {"2.8 ten pings", {F(1, PING, "0"), F(1, PING, "1"), F(1, PING, "2"), F(1, PING, "3"), F(1, PING, "4"), F(1, PING, "5"), F(1, PING, "6"), F(1, PING, "7"), F(1, PING, "8"), F(1, PING, "9")}, {{0}}, {PONG("0"), PONG("1"), PONG("2"), PONG("3"), PONG("4"), PONG("5"), PONG("6"), PONG("7"), PONG("8"), PONG("9")}, 0, 0, 0, 0, 0},
    /* 3 reserved bits */
    {"3.1 RSV1 text", {F(1, T, "ok"), FR(1, 4, T, "bad"), F(1, T, "after")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.2 RSV2 text", {F(1, T, "ok"), FR(1, 2, T, "bad"), F(1, T, "after")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.3 RSV3 after ping", {F(1, T, "ok"), FR(1, 1, T, "bad"), F(1, PING, "p")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.4 RSV1+RSV3 binary", {FR(1, 5, B, "bad")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.5 RSV all binary", {FR(1, 7, B, "bad")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.6 RSV2 ping", {FR(1, 2, PING, "p")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.7 RSV3 close", {FR(1, 1, CLS, "")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"3.8 RSV1 continuation", {F(0, T, "a"), FR(1, 4, C, "b")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    /* 4 opcodes */
    {"4.1.1 opcode 3", {F(1, T, "ok"), F(1, 3, ""), F(1, PING, "p")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.1.2 opcode 4", {F(1, T, "ok"), F(1, 4, "payload"), F(1, PING, "p")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.1.3 opcode 5", {F(1, 5, "")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.1.4 opcode 6", {F(1, 6, "x")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.1.5 opcode 7", {F(1, 7, "x"), F(1, T, "after")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.2.1 opcode 11", {F(1, T, "ok"), F(1, 11, "")}, {M(T, "ok")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.2.2 opcode 12", {F(1, 12, "x")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.2.3 opcode 13", {F(1, 13, "")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.2.4 opcode 14", {F(1, 14, "x")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"4.2.5 opcode 15", {F(1, 15, "x"), F(1, PING, "p")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    /* 5 fragmentation */
    {"5.1 fragmented ping", {F(0, PING, "frag"), F(1, C, "ment")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.2 fragmented pong", {F(0, PNG, "frag"), F(1, C, "ment")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.3 text in 2 fragments", {F(0, T, "frag"), F(1, C, "ment")}, {M(T, "fragment")}, {{0}}, 0, 0, 0, 0, 0},
    {"5.4 text in 1 fragment + empty fin", {F(0, T, "whole"), F(1, C, "")}, {M(T, "whole")}, {{0}}, 0, 0, 0, 0, 0},
    {"5.5 binary in many fragments", {F(0, B, "f1"), F(0, C, "f2"), F(0, C, ""), F(0, C, "f3"), F(0, C, "f4"), F(1, C, "f5")}, {M(B, "f1f2f3f4f5")}, {{0}}, 0, 0, 0, 0, 0},
    {"5.6 pings between fragments", {F(0, T, "frag"), F(1, PING, "p1"), F(0, C, "me"), F(1, PING, ""), F(1, C, "nt")}, {M(T, "fragment")}, {PONG("p1"), PONG("")}, 0, 0, 0, 0, 0},
    {"5.7 pong between fragments", {F(0, T, "a"), F(1, PNG, "p"), F(1, C, "b")}, {M(T, "ab")}, {{0}}, 0, 0, 0, 0, 0},
    {"5.8 empty fragments", {F(0, T, ""), F(0, C, ""), F(1, C, "")}, {M(T, "")}, {{0}}, 0, 0, 0, 0, 0},
    {"5.9 continuation without start", {F(1, C, "cont"), F(1, T, "after")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.10 non-final continuation without start", {F(0, C, "cont"), F(1, C, "x")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.11 continuation after a finished message", {F(1, T, "done"), F(1, C, "x")}, {M(T, "done")}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.12 text inside fragmented", {F(0, T, "a"), F(1, T, "b"), F(1, C, "c")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.13 binary inside fragmented", {F(0, B, "a"), F(0, B, "b")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.14 fragmented close", {F(0, CLS, "\x03\xe8"), F(1, C, "")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"5.15 fragments then whole", {F(0, T, "a"), F(1, C, "b"), F(1, B, "c"), F(0, T, "d"), F(1, C, "e")}, {M(T, "ab"), M(B, "c"), M(T, "de")}, {{0}}, 0, 0, 0, 0, 0},
    /* 6 UTF-8 */
    {"6.1 valid ascii", {F(1, T, "Hello-UTF-8!!")}, {M(T, "Hello-UTF-8!!")}, {{0}}, 0, 0, 0, 0, 0},
    {"6.2 valid multilingual", {F(1, T, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac \xf0\x9d\x84\x9e")}, {M(T, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac \xf0\x9d\x84\x9e")}, {{0}}, 0, 0, 0, 0, 0},
    {"6.3 valid boundaries", {F(1, T, "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf" "\xee\x80\x80")}, {M(T, "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xed\x9f" "\xbf\xee\x80\x80")}, {{0}}, 0, 0, 0, 0, 0},
    {"6.4 valid split in code points", {F(0, T, "\xce"), F(0, C, "\xba\xf0\x9d"), F(0, C, "\x84"), F(1, C, "\x9e")}, {M(T, "\xce\xba\xf0\x9d\x84\x9e")}, {{0}}, 0, 0, 0, 0, 0},
    {"6.5 stray continuation", {F(1, T, "a\x80")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.6 overlong 2", {F(1, T, "\xc0\xaf")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.7 overlong 2 (C1)", {F(1, T, "\xc1\xbf")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.8 overlong 3", {F(1, T, "\xe0\x80\xaf")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.9 overlong 4", {F(1, T, "\xf0\x80\x80\xaf")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.10 surrogate high", {F(1, T, "\xed\xa0\x80")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.11 surrogate low", {F(1, T, "\xed\xbf\xbf")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.12 above U+10FFFF", {F(1, T, "\xf4\x90\x80\x80")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.13 byte F5", {F(1, T, "\xf5\x80\x80\x80")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.14 byte FE", {F(1, T, "\xfe")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.15 byte FF", {F(1, T, "ok\xff")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.16 truncated at the end", {F(1, T, "ok\xe2\x82")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.17 truncated then ascii", {F(1, T, "\xe2\x82" "a")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.18 truncated across fragments", {F(0, T, "\xf0\x9d"), F(1, C, "\x84")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.19 invalid in a later fragment", {F(0, T, "good"), F(0, C, "\xed\xa0\x80"), F(1, C, "x")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"6.20 binary is not checked", {F(1, B, "\xff\xc0")}, {M(B, "\xff\xc0")}, {{0}}, 0, 0, 0, 0, 0},
    /* 7 closing */
    {"7.1.1 close empty", {F(1, CLS, "")}, {{0}}, {CLOSE(0)}, 0, 1005, 1, 0, 0},
    {"7.1.2 close 1000 + reason", {F(1, CLS, "\x03\xe8Hello")}, {{0}}, {CLOSE(1000)}, 0, 1000, 1, 0, 0},
    {"7.1.3 data after close ignored", {F(1, CLS, "\x03\xe8"), F(1, T, "after"), F(1, PING, "p")}, {{0}}, {CLOSE(1000)}, 0, 1000, 1, 0, 0},
    {"7.1.4 close after message", {F(1, T, "msg"), F(1, CLS, "\x03\xe9")}, {M(T, "msg")}, {CLOSE(1001)}, 0, 1001, 1, 0, 0},
    {"7.1.5 close inside fragmented", {F(0, T, "half"), F(1, CLS, "\x0b\xb8")}, {{0}}, {CLOSE(3000)}, 0, 3000, 1, 0, 0},
    {"7.1.6 two closes", {F(1, CLS, "\x03\xe8"), F(1, CLS, "\x03\xe9")}, {{0}}, {CLOSE(1000)}, 0, 1000, 1, 0, 0},
    {"7.2.1 close 1 byte", {F(1, CLS, "\x03")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.3.1 close 125 bytes", {F(1, CLS, "\x03\xe8" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")}, {{0}}, {CLOSE(1000)}, 0, 1000, 1, 0, 0},
    {"7.3.2 close 126 bytes", {FP(1, CLS, 126)}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.5.1 reason invalid UTF-8", {F(1, CLS, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"7.5.2 reason truncated UTF-8", {F(1, CLS, "\x03\xe8\xe2\x82")}, {{0}}, {CLOSE(1007)}, DX_EUTF8, 1007, 0, 0, 0},
    {"7.7.1 code 1000", {F(1, CLS, "\x03\xe8")}, {{0}}, {CLOSE(1000)}, 0, 1000, 1, 0, 0},
    {"7.7.2 code 1001", {F(1, CLS, "\x03\xe9")}, {{0}}, {CLOSE(1001)}, 0, 1001, 1, 0, 0},
    {"7.7.3 code 1002", {F(1, CLS, "\x03\xea")}, {{0}}, {CLOSE(1002)}, 0, 1002, 1, 0, 0},
    {"7.7.4 code 1003", {F(1, CLS, "\x03\xeb")}, {{0}}, {CLOSE(1003)}, 0, 1003, 1, 0, 0},
    {"7.7.5 code 1007", {F(1, CLS, "\x03\xef")}, {{0}}, {CLOSE(1007)}, 0, 1007, 1, 0, 0},
    {"7.7.6 code 1008", {F(1, CLS, "\x03\xf0")}, {{0}}, {CLOSE(1008)}, 0, 1008, 1, 0, 0},
    {"7.7.7 code 1009", {F(1, CLS, "\x03\xf1")}, {{0}}, {CLOSE(1009)}, 0, 1009, 1, 0, 0},
    {"7.7.8 code 1010", {F(1, CLS, "\x03\xf2")}, {{0}}, {CLOSE(1010)}, 0, 1010, 1, 0, 0},
    {"7.7.9 code 1011", {F(1, CLS, "\x03\xf3")}, {{0}}, {CLOSE(1011)}, 0, 1011, 1, 0, 0},
    {"7.7.10 code 1014", {F(1, CLS, "\x03\xf6")}, {{0}}, {CLOSE(1014)}, 0, 1014, 1, 0, 0},
    {"7.7.11 code 3000", {F(1, CLS, "\x0b\xb8")}, {{0}}, {CLOSE(3000)}, 0, 3000, 1, 0, 0},
    {"7.7.12 code 3999", {F(1, CLS, "\x0f\x9f")}, {{0}}, {CLOSE(3999)}, 0, 3999, 1, 0, 0},
    {"7.7.13 code 4000", {F(1, CLS, "\x0f\xa0")}, {{0}}, {CLOSE(4000)}, 0, 4000, 1, 0, 0},
    {"7.7.14 code 4999", {F(1, CLS, "\x13\x87")}, {{0}}, {CLOSE(4999)}, 0, 4999, 1, 0, 0},
    {"7.9.1 code 0", {F(1, CLS, "\x00\x00")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.2 code 999", {F(1, CLS, "\x03\xe7")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.3 code 1004", {F(1, CLS, "\x03\xec")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.4 code 1005", {F(1, CLS, "\x03\xed")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.5 code 1006", {F(1, CLS, "\x03\xee")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.6 code 1015", {F(1, CLS, "\x03\xf7")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.7 code 1016", {F(1, CLS, "\x03\xf8")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.8 code 1100", {F(1, CLS, "\x04\x4c")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.9 code 2000", {F(1, CLS, "\x07\xd0")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.10 code 2999", {F(1, CLS, "\x0b\xb7")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.11 code 5000", {F(1, CLS, "\x13\x88")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.9.12 code 65535", {F(1, CLS, "\xff\xff")}, {{0}}, {CLOSE(1002)}, DX_EPROTO, 1002, 0, 0, 0},
    {"7.10.1 our close, then the peer's", {F(1, T, "late"), F(1, CLS, "\x03\xe8")}, {M(T, "late")}, {CLOSE(1000)}, 0, 1000, 1, 0, 1000},
    {"7.10.2 our close, peer's empty close", {F(1, PING, "p"), F(1, CLS, "")}, {{0}}, {CLOSE(4001)}, 0, 1005, 1, 0, 4001},
    {"7.10.3 our close, peer's bad close", {F(1, CLS, "\x03")}, {{0}}, {CLOSE(1000)}, DX_EPROTO, 1002, 0, 0, 1000},
    /* 9 limits */
    {"9.1 single frame over the limit, header only", {FT(1, B, 1001)}, {{0}}, {CLOSE(1009)}, DX_ETOOBIG, 1009, 0, 1000, 0},
    {"9.2 text frame over the limit, header only", {FT(1, T, 70000)}, {{0}}, {CLOSE(1009)}, DX_ETOOBIG, 1009, 0, 65536, 0},
    {"9.3 fragmented over the limit", {FP(0, B, 600), FT(1, C, 401)}, {{0}}, {CLOSE(1009)}, DX_ETOOBIG, 1009, 0, 1000, 0},
    {"9.4 fragmented at the limit", {FP(0, B, 520), FP(1, C, 480)}, {MP(B, 1000)}, {{0}}, 0, 0, 0, 1000, 0},
    {"9.5 limit ignores control frames", {FP(0, B, 26), FP(1, PING, 100), FP(1, C, 26)}, {MP(B, 52)}, {PONGP(100)}, 0, 0, 0, 52, 0},
    {"9.6 1 MiB under the default limit", {FP(1, B, 1 << 20)}, {MP(B, 1 << 20)}, {{0}}, 0, 0, 0, 0, 0},
    /* 10 misc */
    {"10.1 interleaved control and data", {F(0, T, "a"), F(1, PING, "1"), F(1, PNG, "x"), F(0, C, "b"), F(1, PING, "2"), F(1, C, "c"), F(1, B, "d"), F(1, PING, "3"), F(0, B, "e"), F(1, PING, ""), F(1, C, "f"), F(1, CLS, "\x03\xe8")}, {M(T, "abc"), M(B, "d"), M(B, "ef")}, {PONG("1"), PONG("2"), PONG("3"), PONG(""), CLOSE(1000)}, 0, 1000, 1, 0, 0},
};
/* clang-format on */

/* ---- running a row ----------------------------------------------------- */

typedef struct got {
    int n;
    int op[16];
    size_t len[16];
    uint8_t *data[16];
    int closes;
    unsigned code;
    int clean;
    int after_close; /* callbacks after on_close */
} got;

static void g_message(dx_conn *c, void *u, enum dx_opcode op, uint8_t *data, size_t len) {
    got *g = u;
    if (g->closes) g->after_close++;
    if (g->n < 16) {
        g->op[g->n] = op;
        g->len[g->n] = len;
        g->data[g->n] = malloc(len + 1);
        memcpy(g->data[g->n], data, len);
    }
    g->n++;
}

static void g_ping(dx_conn *c, void *u, const uint8_t *d, size_t len) {
    got *g = u;
    if (g->closes) g->after_close++;
}

static void g_close(dx_conn *c, void *u, uint16_t code, const uint8_t *r, size_t rl, int clean) {
    got *g = u;
    g->closes++;
    g->code = code;
    g->clean = clean;
}

static const dx_conn_callbacks g_cbs = {g_message, NULL, g_ping, NULL, g_close};

static void got_free(got *g) {
    for (int i = 0; i < g->n && i < 16; i++)
        free(g->data[i]);
}

static void pattern(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)('a' + i % 26);
}

/* Appends a frame as the peer writes it. Patterned payloads restart at
 * 'a' in each frame, so a patterned fragmented message has fragments of a
 * multiple of 26 bytes. */
static size_t put_frame(uint8_t *out, const tf *f, int mask, uint32_t seed) {
    uint8_t key[4] = {(uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(seed >> 16),
                      (uint8_t)(seed >> 24)};
    size_t len = f->len;
    size_t i = dx_t_frame_head(out, f->fin, f->rsv, f->op, len, mask ? key : NULL);
    if (f->trunc) return i;
    if (f->data)
        memcpy(out + i, f->data, len);
    else
        pattern(out + i, len);
    if (mask)
        for (size_t k = 0; k < len; k++)
            out[i + k] ^= key[k & 3];
    return i + len;
}

static int tf_count(const tf *f, int max) {
    int n = 0;
    while (n < max && f[n].on)
        n++;
    return n;
}

/* Compares the frames `c` queued with `want`; checks masking by role. */
static int check_output(dx_conn *c, enum dx_role role, const tf *want, int nwant,
                        const char *name) {
    size_t total = dx_conn_buffered(c);
    dx_t_bytes taken = dx_t_take(c, 4);
    uint8_t *b = taken.p;
    size_t have = taken.len;
    int ok = have == total, k = 0;
    size_t pos = 0;
    uint8_t exp[256];
    while (ok && pos < have) {
        if (have - pos < 2) {
            ok = 0;
            break;
        }
        int fin = b[pos] >> 7, op = b[pos] & 15, rsv = (b[pos] >> 4) & 7, masked = b[pos + 1] >> 7;
        size_t len = b[pos + 1] & 127;
        pos += 2;
        if (len >= 126 || !fin || rsv || masked != (role == DX_ROLE_CLIENT) || k >= nwant) {
            ok = 0;
            break;
        }
        uint8_t key[4] = {0};
        if (masked) memcpy(key, b + pos, 4), pos += 4;
        uint8_t *p = b + pos;
        for (size_t i = 0; i < len; i++)
            p[i] ^= key[i & 3];
        pos += len;
        const tf *w = &want[k++];
        if (op != w->op) ok = 0;
        if (op == DX_OP_CLOSE) {
            if (w->code == 0 ? len != 0 : (len != 2 || (unsigned)(p[0] << 8 | p[1]) != w->code))
                ok = 0;
        } else {
            if (w->data)
                memcpy(exp, w->data, w->len);
            else
                pattern(exp, w->len);
            if (len != w->len || memcmp(p, exp, len)) ok = 0;
        }
    }
    if (k != nwant || pos != have) ok = 0;
    if (!ok) fprintf(stderr, "  %s: output frames differ (%d of %d)\n", name, k, nwant);
    free(b);
    return ok;
}

enum { MODE_WHOLE, MODE_BYTES, MODE_RANDOM, MODES };

static int run_row(const row *r, enum dx_role role, int mode) {
    int peer_masks = role == DX_ROLE_SERVER;
    int nin = tf_count(r->in, 16), nmsg = tf_count(r->msgs, 12), nout = tf_count(r->out, 16);
    size_t cap = 0;
    for (int i = 0; i < nin; i++)
        cap += r->in[i].len + 14;
    if (mode == MODE_BYTES && cap > 200000) return 1; /* large rows: whole and random only */
    uint8_t *wire = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < nin; i++)
        len += put_frame(wire + len, &r->in[i], peer_masks, (uint32_t)dx_t_rand());

    got g = {0};
    dx_conn_config cfg = {.role = role, .max_message = r->max, .cb = &g_cbs, .user = &g};
    dx_conn *c = dx_conn_new(&cfg, 0);
    dx_conn_open(c);
    int ok = 1;
    if (r->our_close) ok &= dx_conn_close(c, r->our_close, NULL, 0) == 0;

    int64_t err = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (mode == MODE_BYTES) n = 1;
        if (mode == MODE_RANDOM) {
            size_t lim = dx_t_rand() % 4 ? 16 : 100000;
            n = 1 + (size_t)(dx_t_rand() % lim);
            if (n > len - pos) n = len - pos;
        }
        int64_t rc = dx_conn_recv(c, wire + pos, n);
        if (rc < 0 && !err) err = rc;
        if (rc >= 0 && (size_t)rc != n) ok = 0;
        if (rc < 0 && err != rc) ok = 0; /* one error only, then ignored */
        pos += n;
    }
    if (err != r->err) {
        fprintf(stderr, "  %s: error %d, want %d\n", r->name, (int)err, r->err);
        ok = 0;
    }
    if (g.n != nmsg) {
        fprintf(stderr, "  %s: %d messages, want %d\n", r->name, g.n, nmsg);
        ok = 0;
    }
    for (int i = 0; i < g.n && i < nmsg && i < 16; i++) {
        const tf *w = &r->msgs[i];
        uint8_t *exp = malloc(w->len + 1);
        if (w->data)
            memcpy(exp, w->data, w->len);
        else
            pattern(exp, w->len);
        if (g.op[i] != w->op || g.len[i] != w->len || memcmp(g.data[i], exp, w->len)) {
            fprintf(stderr, "  %s: message %d differs\n", r->name, i);
            ok = 0;
        }
        free(exp);
    }
    ok &= check_output(c, role, r->out, nout, r->name);
    if (r->code) {
        if (g.closes != 1 || g.code != r->code || g.clean != r->clean) {
            fprintf(stderr, "  %s: closed %d times, code %u clean %d\n", r->name, g.closes, g.code,
                    g.clean);
            ok = 0;
        }
        ok &= dx_conn_state(c) == DX_CLOSED && dx_conn_should_close(c);
    } else {
        ok &= g.closes == 0 && dx_conn_state(c) == (r->our_close ? DX_CLOSING : DX_OPEN);
    }
    ok &= g.after_close == 0;
    got_free(&g);
    dx_conn_free(c);
    free(wire);
    return ok;
}

static void test_table(void) {
    static const char *role_name[] = {"server", "client"};
    static const char *mode_name[] = {"whole", "bytes", "random"};
    int count = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (int role = 0; role < 2; role++) {
            for (int mode = 0; mode < MODES; mode++) {
                count++;
                if (!run_row(&rows[i], (enum dx_role)role, mode)) {
                    fprintf(stderr, "row \"%s\" failed as %s, fed %s\n", rows[i].name,
                            role_name[role], mode_name[mode]);
                    CHECK(0);
                }
            }
        }
    }
    fprintf(stderr, "conformance table: %zu rows, %d runs\n", sizeof rows / sizeof rows[0], count);
}

/* ---- 6: a bad byte at every position, split at every position ---------- */

static void test_utf8_every_position(void) {
    static const char text[] =
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5-\xe2\x82\xac-\xf0\x9d\x84\x9e!";
    const size_t tlen = sizeof text - 1;
    int runs = 0;
    for (int role = 0; role < 2; role++) {
        for (size_t bad = 0; bad < tlen; bad++) {
            uint8_t msg[64];
            memcpy(msg, text, tlen);
            msg[bad] = 0xff; /* can never appear in UTF-8 */
            /* Three fragments, cut at fixed points inside code points. */
            size_t cuts[4] = {0, 5, 14, tlen};
            uint8_t wire[256];
            size_t len = 0, bad_at = 0;
            for (int f = 0; f < 3; f++) {
                tf fr = {1,
                         f == 2,
                         0,
                         f ? DX_OP_CONT : DX_OP_TEXT,
                         (const char *)msg + cuts[f],
                         cuts[f + 1] - cuts[f],
                         0,
                         0};
                size_t h =
                    put_frame(wire + len, &fr, role == DX_ROLE_SERVER, 0x5a5a1234u + (uint32_t)f);
                if (bad >= cuts[f] && bad < cuts[f + 1])
                    bad_at = len + (h - fr.len) + (bad - cuts[f]);
                len += h;
            }
            for (size_t split = 0; split <= len; split++) {
                uint8_t copy[256];
                memcpy(copy, wire, len);
                got g = {0};
                dx_conn_config cfg = {.role = (enum dx_role)role, .cb = &g_cbs, .user = &g};
                dx_conn *c = dx_conn_new(&cfg, 0);
                dx_conn_open(c);
                int64_t r1 = dx_conn_recv(c, copy, split);
                int64_t r2 = dx_conn_recv(c, copy + split, len - split);
                int in_first = bad_at < split;
                int ok = in_first ? (r1 == DX_EUTF8 && r2 == (int64_t)(len - split))
                                  : (r1 == (int64_t)split && r2 == DX_EUTF8);
                ok &= g.n == 0 && g.closes == 1 && g.code == 1007 && !g.clean;
                if (!ok) {
                    fprintf(stderr, "  role %d bad byte %zu split %zu: %d %d\n", role, bad, split,
                            (int)r1, (int)r2);
                    CHECK(0);
                }
                got_free(&g);
                dx_conn_free(c);
                runs++;
            }
        }
    }
    fprintf(stderr, "utf-8 positions: %d runs\n", runs);
}

/* ---- round trip: random messages, random fragmentation and splits ------- */

typedef struct sent {
    int op;
    uint8_t *data;
    size_t len;
} sent;

typedef struct rt {
    sent *want;
    int nwant;
    int next;
    int bad;
    int pings;
} rt;

static void rt_message(dx_conn *c, void *u, enum dx_opcode op, uint8_t *data, size_t len) {
    rt *t = u;
    if (t->next >= t->nwant) {
        t->bad++;
        return;
    }
    const sent *w = &t->want[t->next++];
    if ((int)op != w->op || len != w->len || (len && memcmp(data, w->data, len))) {
        fprintf(stderr, "  round trip: message %d differs (len %zu, want %zu)\n", t->next - 1, len,
                w->len);
        t->bad++;
    }
}

static void rt_ping(dx_conn *c, void *u, const uint8_t *d, size_t len) {
    ((rt *)u)->pings++;
}

static const dx_conn_callbacks rt_cbs = {rt_message, NULL, rt_ping, NULL, NULL};

static size_t rand_size(void) {
    uint64_t r = dx_t_rand() % 100;
    if (r < 55) return (size_t)(dx_t_rand() % 130);
    if (r < 85) return (size_t)(dx_t_rand() % 70000);
    if (r < 97) return (size_t)(dx_t_rand() % 300000);
    return (size_t)(dx_t_rand() % ((1u << 20) + 1));
}

/* Random valid UTF-8 of exactly `len` bytes. */
static void rand_utf8(uint8_t *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t room = len - i, w = 1 + (size_t)(dx_t_rand() % 4);
        if (w > room) w = room;
        uint32_t cp;
        if (w == 1)
            cp = (uint32_t)(dx_t_rand() % 0x80);
        else if (w == 2)
            cp = 0x80 + (uint32_t)(dx_t_rand() % (0x800 - 0x80));
        else if (w == 3) {
            do
                cp = 0x800 + (uint32_t)(dx_t_rand() % (0x10000 - 0x800));
            while (cp >= 0xD800 && cp <= 0xDFFF);
        } else
            cp = 0x10000 + (uint32_t)(dx_t_rand() % (0x110000 - 0x10000));
        if (w == 1)
            p[i] = (uint8_t)cp;
        else if (w == 2)
            p[i] = (uint8_t)(0xC0 | cp >> 6), p[i + 1] = (uint8_t)(0x80 | (cp & 63));
        else if (w == 3) {
            p[i] = (uint8_t)(0xE0 | cp >> 12);
            p[i + 1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            p[i + 2] = (uint8_t)(0x80 | (cp & 63));
        } else {
            p[i] = (uint8_t)(0xF0 | cp >> 18);
            p[i + 1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
            p[i + 2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            p[i + 3] = (uint8_t)(0x80 | (cp & 63));
        }
        i += w;
    }
}

static void test_round_trip(void) {
    const int rounds = 60, per_round = 12;
    size_t total_bytes = 0;
    int total_msgs = 0;
    for (int round = 0; round < rounds; round++) {
        enum dx_role from = dx_t_rand() % 2 ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
        enum dx_role to = from == DX_ROLE_CLIENT ? DX_ROLE_SERVER : DX_ROLE_CLIENT;
        rt t = {calloc(per_round, sizeof(sent)), per_round, 0, 0, 0};
        dx_conn_config fc = {.role = from}, tc = {.role = to, .cb = &rt_cbs, .user = &t};
        dx_conn *a = dx_conn_new(&fc, 0), *b = dx_conn_new(&tc, 0);
        dx_conn_open(a);
        dx_conn_open(b);
        int pings = 0;
        for (int m = 0; m < per_round; m++) {
            sent *s = &t.want[m];
            s->op = dx_t_rand() % 2 ? DX_OP_TEXT : DX_OP_BINARY;
            s->len = rand_size();
            s->data = malloc(s->len + 1);
            if (s->op == DX_OP_TEXT)
                rand_utf8(s->data, s->len);
            else
                for (size_t i = 0; i < s->len; i++)
                    s->data[i] = (uint8_t)dx_t_rand();
            if (dx_t_rand() % 3) {
                CHECK_EQ_INT(dx_conn_send(a, (enum dx_opcode)s->op, s->data, s->len), 0);
                continue;
            }
            /* Fragments at random points (text may be cut inside a code
             * point), with pings in between now and then. */
            size_t pos = 0;
            do {
                size_t piece = s->len - pos;
                if (dx_t_rand() % 4) piece = piece ? (size_t)(dx_t_rand() % (piece + 1)) : 0;
                int fin = pos + piece == s->len && dx_t_rand() % 4 != 0;
                CHECK_EQ_INT(
                    dx_conn_send_fragment(a, (enum dx_opcode)s->op, s->data + pos, piece, fin), 0);
                if (dx_t_rand() % 4 == 0) {
                    CHECK_EQ_INT(dx_conn_ping(a, "hb", 2), 0);
                    pings++;
                }
                pos += piece;
                if (fin) break;
            } while (1);
        }
        /* The wire bytes, fed at random split points. */
        size_t len = dx_conn_buffered(a);
        uint8_t *wire = malloc(len + 1);
        size_t have = 0;
        struct iovec iov[16];
        int n;
        while ((n = dx_conn_out_iov(a, iov, 16)) > 0) {
            size_t got_bytes = 0;
            for (int i = 0; i < n; i++) {
                memcpy(wire + have, iov[i].iov_base, iov[i].iov_len);
                have += iov[i].iov_len;
                got_bytes += iov[i].iov_len;
            }
            dx_conn_out_consume(a, got_bytes);
        }
        CHECK_EQ_INT(have, len);
        size_t pos = 0;
        while (pos < len) {
            size_t lim = dx_t_rand() % 3 == 0 ? 64 : dx_t_rand() % 2 ? 4096 : 400000;
            size_t piece = 1 + (size_t)(dx_t_rand() % lim);
            if (piece > len - pos) piece = len - pos;
            int64_t rc = dx_conn_recv(b, wire + pos, piece);
            if (rc != (int64_t)piece) {
                fprintf(stderr, "  round trip: recv returned %d\n", (int)rc);
                CHECK(0);
                break;
            }
            pos += piece;
        }
        CHECK_EQ_INT(t.next, per_round);
        CHECK_EQ_INT(t.bad, 0);
        CHECK_EQ_INT(t.pings, pings);
        total_bytes += len;
        total_msgs += per_round;
        for (int m = 0; m < per_round; m++)
            free(t.want[m].data);
        free(t.want);
        free(wire);
        dx_conn_free(a);
        dx_conn_free(b);
    }
    fprintf(stderr, "round trip: %d messages, %zu wire bytes\n", total_msgs, total_bytes);
}

int main(void) {
    dx_t_seed();
    RUN(test_table);
    RUN(test_utf8_every_position);
    RUN(test_round_trip);
    return TEST_DONE();
}
