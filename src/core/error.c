#include <duplex/common.h>

const char *dx_strerror(int err) {
    switch (err) {
    case DX_OK: return "success";
    case DX_ENOMEM: return "out of memory";
    case DX_EINVAL: return "invalid argument";
    case DX_EPROTO: return "protocol error";
    case DX_EUTF8: return "invalid UTF-8";
    case DX_ETOOBIG: return "message too big";
    case DX_EPOLICY: return "policy violation";
    case DX_ESTATE: return "not allowed in this state";
    case DX_ENOSPC: return "buffer too small";
    case DX_EHTTP: return "malformed HTTP";
    case DX_EHDRSIZE: return "HTTP headers too large";
    case DX_EHANDSHAKE: return "handshake failed";
    case DX_EIO: return "I/O error";
    case DX_ETIMEDOUT: return "timed out";
    case DX_ETLS: return "TLS error";
    case DX_EADDR: return "bad address";
    case DX_ECONNREFUSED: return "connection refused";
    case DX_ECLOSED: return "connection closed";
    case DX_EEXT: return "extension data corrupt";
    case DX_EBUSY: return "busy";
    case DX_EADDRINUSE: return "address already in use";
    default: return "unknown error";
    }
}

uint16_t dx_error_close_code(int err) {
    switch (err) {
    case DX_EPROTO:
    case DX_EEXT: return DX_CLOSE_PROTOCOL_ERROR;
    case DX_EUTF8: return DX_CLOSE_INVALID_DATA;
    case DX_ETOOBIG: return DX_CLOSE_TOO_BIG;
    case DX_EPOLICY: return DX_CLOSE_POLICY;
    case DX_EBUSY: return DX_CLOSE_TRY_AGAIN;
    default: return DX_CLOSE_INTERNAL;
    }
}

int dx_close_code_valid(unsigned code) {
    if (code >= 1000 && code <= 1003) return 1;
    if (code >= 1007 && code <= 1014) return 1;
    return code >= 3000 && code <= 4999;
}
