#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<harness>/ (committed; run again
after changing it). Each harness reads: one configuration byte, one
split-seed byte, then the data (see fuzz/fuzz.h); fuzz_url and fuzz_ext
take the raw input."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, masked=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n <= 0xFFFF:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if masked:
        h += MASK
        payload = bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
    return h + payload


def frames(masked):
    f = lambda *a, **k: frame(*a, masked=masked, **k)
    return {
        "hello": f(1, b"Hello"),
        "binary": f(2, bytes(range(200))),
        "len16": f(2, b"x" * 300),
        "len64_huge": f(2, length=1 << 62),
        "fragmented": f(1, b"Hel", fin=False) + f(9, b"p") + f(0, b"lo", fin=True),
        "utf8_split": f(1, "héllo €".encode()[:3], fin=False) + f(0, "héllo €".encode()[3:]),
        "bad_utf8": f(1, b"ok\xc3\x28"),
        "ping_pong": f(9, b"ping") + f(10, b"pong"),
        "close": f(8, struct.pack(">H", 1000) + b"bye"),
        "close_bad": f(8, struct.pack(">H", 1005)),
        "tiny_conts": f(2, b"a", fin=False) + b"".join(f(0, b"b", fin=False) for _ in range(40)),
        "rsv1": f(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4),
        "reserved_op": f(3, b"x"),
    }


def pmd(data, bits=15, level=6):
    """A permessage-deflate payload: raw DEFLATE, sync-flushed, tail removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as fh:
        fh.write(data)


REQ = (b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
       b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
       b"Sec-WebSocket-Version: 13\r\nOrigin: https://example.com\r\n"
       b"Sec-WebSocket-Protocol: chat, superchat\r\n"
       b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
RES = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n")
EXTS = [
    b"permessage-deflate; client_max_window_bits",
    b"permessage-deflate; server_no_context_takeover; client_max_window_bits=10, permessage-deflate",
    b'permessage-deflate; server_max_window_bits="12" ; client_no_context_takeover',
    b"x-webkit-deflate-frame, foo;a=1;b;c=\"d\"",
    b"bad;=1, ok",
]


def main():
    # Frames: cfg 0 = server role (masked input), 1 = client role.
    for masked, cfg in ((True, 0x00), (False, 0x01)):
        for name, data in frames(masked).items():
            role = "server" if masked else "client"
            write("fuzz_frame", f"{role}_{name}", bytes([cfg, 0x03]) + data)
            write("fuzz_frame", f"{role}_{name}_bytewise", bytes([cfg | 0x0A, 0x00]) + data)
            write("fuzz_conn", f"{role}_{name}", bytes([cfg, 0x03]) + data)
            write("fuzz_conn", f"{role}_{name}_echo_split", bytes([cfg | 0x04, 0x01]) + data)
    for masked, cfg in ((True, 0x02 | 0x04), (False, 0x03 | 0x04 | 0x80)):
        write("fuzz_conn", "stream_echo_" + ("server" if masked else "client"),
              bytes([cfg, 0x02]) + b"".join(frames(masked).values()))
    write("fuzz_conn", "alloc_fail", bytes([0x44, 0x11]) + b"".join(frames(True).values()))

    for name, s in {
        "ascii": b"hello, world",
        "mixed": "héllo, 世界 🎉".encode(),
        "overlong": b"\xc0\xaf",
        "surrogate": b"\xed\xa0\x80",
        "too_big": b"\xf4\x90\x80\x80",
        "truncated": "世".encode()[:2],
        "long": ("a" * 70 + "é" * 40 + "世" * 30 + "🎉" * 20).encode(),
    }.items():
        write("fuzz_utf8", name, b"\x00\x03" + s)
        write("fuzz_utf8", name + "_padded_split", b"\x01\x01" + s)

    write("fuzz_http_request", "upgrade", b"\xfa\x03" + REQ)
    write("fuzz_http_request", "upgrade_bytewise", b"\xfa\x00" + REQ)
    write("fuzz_http_request", "healthz", b"\xfa\x03GET /healthz HTTP/1.0\r\n\r\n")
    write("fuzz_http_request", "version8", b"\xfa\x03" + REQ.replace(b"Version: 13", b"Version: 8"))
    write("fuzz_http_request", "obs_fold", b"\xfa\x03GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n")
    write("fuzz_http_request", "few_headers", b"\x0c\x02" + REQ)
    write("fuzz_http_request", "small_max", b"\xf8\x02" + REQ)
    write("fuzz_http_request", "bare_lf", b"\xfa\x03" + REQ.replace(b"\r\n", b"\n"))
    write("fuzz_http_request", "tls_hello", b"\xfa\x03\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")

    write("fuzz_http_response", "accept", b"\x0b\x03" + RES + b"\r\n")
    write("fuzz_http_response", "accept_proto_ext", b"\x0b\x01" + RES +
          b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: " + EXTS[0] + b"\r\n\r\n")
    write("fuzz_http_response", "refused", b"\x08\x03HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nnope\n")
    write("fuzz_http_response", "no_reason", b"\x08\x00HTTP/1.1 101\r\n\r\n")

    # Inflate: cfg bits: 0 role, 1 peer keeps context, 2-4 window-8, 5 sink,
    # 6-7 limit (none, 1000, 64 KiB, 1 MiB).
    text = b"Hello, hello, hello! " * 20
    write("fuzz_inflate", "hello", bytes([0x1C, 0x03]) + pmd(b"Hello"))
    write("fuzz_inflate", "repeat_sink", bytes([0x3C, 0x02]) + pmd(text))
    write("fuzz_inflate", "window9_keep", bytes([0x06, 0x01]) + pmd(text, bits=9) + pmd(text, bits=9))
    write("fuzz_inflate", "bomb_1000", bytes([0x5C, 0x03]) + pmd(b"\x00" * 200000, level=9))
    write("fuzz_inflate", "bomb_64k_sink", bytes([0xBC, 0x03]) + pmd(b"\x00" * 200000, level=9))
    write("fuzz_inflate", "stored", bytes([0x1C, 0x03]) + pmd(bytes(range(256)), level=0))
    write("fuzz_inflate", "final_block", bytes([0x1C, 0x03]) + zlib.compressobj(6, zlib.DEFLATED, -15).compress(b"abc") + zlib.compressobj(6, zlib.DEFLATED, -15).flush())
    # The connection with permessage-deflate: split-seed bit 7 turns it on.
    for masked, cfg in ((True, 0x04), (False, 0x05)):
        role = "server" if masked else "client"
        f = lambda *a, **k: frame(*a, masked=masked, **k)
        msgs = (f(1, pmd("héllo wörld".encode()), rsv=4) + f(2, pmd(text), rsv=4) +
                f(1, pmd(text)[:5], fin=False, rsv=4) + f(9, b"p") + f(0, pmd(text)[5:]) +
                f(1, pmd(b"\xff\xfe"), rsv=4) + f(2, pmd(b"\x00" * 100000, level=9), rsv=4))
        write("fuzz_conn", f"{role}_deflate", bytes([cfg, 0x83]) + msgs)
        write("fuzz_conn", f"{role}_deflate_keep_w9", bytes([cfg | 0x02, 0xE1]) + msgs)
        write("fuzz_conn", f"{role}_deflate_bomb", bytes([cfg | 0x20, 0x83]) +
              f(2, pmd(b"\x00" * 200000, level=9), rsv=4))

    for i, e in enumerate(EXTS):
        write("fuzz_ext", f"ext{i}", e)
    write("fuzz_ext", "protocols", b"chat, superchat, \"quoted, comma\", v2.duplex")

    for i, u in enumerate([
        b"ws://example.com/chat", b"wss://example.com:8443/a/b?c=d&e=f", b"ws://[::1]:8080/",
        b"http://127.0.0.1", b"WSS://EXAMPLE.com", b"ws://host/p a\"th<>`\xc3\xa9",
        b"ws://user@host/", b"ws://host/#frag", b"ws://host:0/", b"ws://[fe80::1%eth0]/",
    ]):
        write("fuzz_url", f"url{i}", u)

    # fuzz_session: cfg bit 0 puts "/.duplex/" before the path, bit 1 drops
    # the query, bit 2 gives a whole target split at its '?'; the split seed
    # cuts path from query otherwise (a whole target is the clearest seed).
    sid = b"0123456789abcdef0123456789abcdef"
    for name, t in [
        ("down_stream", b"/.duplex/" + sid + b"/down?ack=0&mode=stream"),
        ("down_poll", b"/.duplex/" + sid + b"/down?mode=poll&ack=18446744073709551615"),
        ("up", b"/.duplex/" + sid + b"/up?seq=1234&ack=99"),
        ("up_no_ack", b"/.duplex/" + sid + b"/up?seq=0"),
        ("ack_overflow", b"/.duplex/" + sid + b"/down?ack=18446744073709551616&mode=poll"),
        ("ack_twice", b"/.duplex/" + sid + b"/down?ack=1&ack=1&mode=stream"),
        ("empty_values", b"/.duplex/" + sid + b"/up?seq=&ack&mode="),
        ("upper_sid", b"/.duplex/" + sid.upper() + b"/down?ack=0&mode=poll"),
        ("sid31", b"/.duplex/" + sid[:31] + b"/up?seq=0"),
        ("sid33", b"/.duplex/" + sid + b"0/up?seq=0"),
        ("other_path", b"/.duplex/x"),
        ("open", b"/chat?token=T&ack=1"),
    ]:
        write("fuzz_session", name, b"\x04\x03" + t)
    write("fuzz_session", "prefixed", b"\x01\x03" + sid + b"/down?ack=7&mode=stream&_=1")
    write("fuzz_session", "open_post", b"\x00\x00POST1")


if __name__ == "__main__":
    main()
