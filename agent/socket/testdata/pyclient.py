#!/usr/bin/env python3
"""A minimal Vigil socket client written from docs/protocol.md alone.

usage: pyclient.py SOCKET
       pyclient.py SOCKET --shm
       pyclient.py SOCKET --drill QUERY

Sends a PING, an INFER_REQUEST with one float32 tensor "frame" [1,3,66,200]
of 0.5s, a STATUS_REQUEST and a CONTROL_REQUEST (DRILL_FAULT), pipelined,
and prints what came back as one JSON object.

With --shm it uses frames in shared memory instead: it registers a sealed
memfd holding two frames (0.5s, then 0.25s), sends an INFER_SHARED for each
and the second frame inline too, then tries the bad cases (a memfd without
the shrink seal, a reference past the end, an unknown buffer), and prints
the answers and the error codes as one JSON object.

With --drill it sends QUERY (a JSON object such as {"op":"list"}) as a
DRILL_REQUEST and prints the DRILL_RESPONSE's JSON, or the ERROR's code.
"""
import fcntl
import json
import mmap
import os
import socket
import struct
import sys

HEADER = struct.Struct("<4sBBHQII")


def pad(n):
    return (n + 7) // 8 * 8


def padded(b):
    return b + b"\0" * (pad(len(b)) - len(b))


def frame(typ, rid, payload):
    return HEADER.pack(b"VGIL", 1, typ, 0, rid, len(payload), 0) + payload


def tensor_block(name, dtype, shape, data):
    name = name.encode()
    head = struct.pack("<HBBI", len(name), dtype, len(shape), len(data))
    return head + padded(name) + b"".join(struct.pack("<q", d) for d in shape) + padded(data)


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def read_frame(sock):
    magic, version, typ, _flags, rid, length, reserved = HEADER.unpack(read_exact(sock, 24))
    assert magic == b"VGIL" and version == 1 and reserved == 0
    return typ, rid, read_exact(sock, length)


def text(p, off, n):
    return p[off:off + n].decode(), off + pad(n)


def infer_response(p, buffers=None):
    """Decodes INFER_RESPONSE, or with buffers ({buffer_id: mmap}) INFER_SHARED_RESPONSE."""
    status, served_by, reason, total_us, frame_seq = struct.unpack_from("<BBHIQ", p, 0)
    backends = []
    for i in range(3):
        flags, outcome, _, start_us, latency_us, _ = struct.unpack_from("<BBHIII", p, 16 + 16 * i)
        backends.append({"started": bool(flags & 1), "finished": bool(flags & 2), "outcome": outcome,
                         "latency_us": latency_us})
    model_len, version_len, detail_len, count = struct.unpack_from("<HHHH", p, 64)
    off = 72
    model, off = text(p, off, model_len)
    version, off = text(p, off, version_len)
    detail, off = text(p, off, detail_len)
    outputs = {}
    for _ in range(count):
        if buffers is None:
            name_len, dtype, rank, data_len = struct.unpack_from("<HBBI", p, off)
            off += 8
        else:
            name_len, dtype, rank, data_len, buffer_id, _, data_off = struct.unpack_from("<HBBIIIQ", p, off)
            off += 24
        name, off = text(p, off, name_len)
        shape = list(struct.unpack_from("<%dq" % rank, p, off))
        off += 8 * rank
        if buffers is None:
            data = p[off:off + data_len]
            off += pad(data_len)
        else:
            data = bytes(buffers[buffer_id][data_off:data_off + data_len])
        if dtype == 1:
            outputs[name] = {"shape": shape, "values": list(struct.unpack("<%df" % (data_len // 4), data))}
    assert off == len(p), "trailing bytes"
    return {"status": status, "served_by": served_by, "reason": reason, "frame_seq": frame_seq,
            "model": model, "version": version, "detail": detail, "backends": backends, "outputs": outputs}


def code_text(p):
    code, flags, _, n, _ = struct.unpack_from("<HBBHH", p, 0)
    return code, flags, p[8:8 + n].decode()


FRAME_BYTES = 4 * 3 * 66 * 200


def make_memfd(size, seal):
    fd = os.memfd_create("pyclient-frames", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    return fd


def register(sock, rid, buffer_id, size, fd, writable=False):
    payload = struct.pack("<IIQ", buffer_id, 1 if writable else 0, size)
    socket.send_fds(sock, [frame(9, rid, payload)], [fd])


def shared_request(seq, buffer_id, offset, shape, data_len, out=(0, 0, 0)):
    """out is the output region: (buffer_id, offset, length); buffer 0 for inline outputs."""
    name = b"frame"
    head = struct.pack("<HBBIIIQ", len(name), 1, len(shape), data_len, buffer_id, 0, offset)
    block = head + padded(name) + b"".join(struct.pack("<q", d) for d in shape)
    fixed = struct.pack("<QQIHHIIQ", seq, 0, 1_000_000, 1, 0, out[0], out[2], out[1])
    return fixed + block


def answer(sock, buffers=None):
    typ, rid, p = read_frame(sock)
    if typ == 2:
        return dict(infer_response(p), id=rid)
    if typ == 12:
        return dict(infer_response(p, buffers), id=rid, shared_response=True)
    if typ == 10:
        buffer_id, _, size = struct.unpack("<IIQ", p)
        return {"id": rid, "buffer_id": buffer_id, "size": size}
    if typ == 127:
        code, flags, msg = code_text(p)
        return {"id": rid, "error": code, "close": flags & 1, "message": msg}
    raise SystemExit("unexpected type %d" % typ)


def main_shm():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[1])
    shape = [1, 3, 66, 200]
    fd = make_memfd(2 * FRAME_BYTES, True)
    mem = mmap.mmap(fd, 2 * FRAME_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    mem[0:FRAME_BYTES] = struct.pack("<f", 0.5) * (3 * 66 * 200)
    mem[FRAME_BYTES:] = struct.pack("<f", 0.25) * (3 * 66 * 200)
    out = {}
    register(sock, 1, 5, 2 * FRAME_BYTES, fd)
    out["ready"] = answer(sock)
    sock.sendall(frame(11, 2, shared_request(10, 5, 0, shape, FRAME_BYTES)))
    out["shared0"] = answer(sock)
    sock.sendall(frame(11, 3, shared_request(11, 5, FRAME_BYTES, shape, FRAME_BYTES)))
    out["shared1"] = answer(sock)
    inline = struct.pack("<QQIHH", 12, 0, 1_000_000, 1, 0) + tensor_block("frame", 1, shape, bytes(mem[FRAME_BYTES:]))
    sock.sendall(frame(1, 4, inline))
    out["inline1"] = answer(sock)
    unsealed = make_memfd(FRAME_BYTES, False)
    register(sock, 5, 6, FRAME_BYTES, unsealed)
    out["unsealed"] = answer(sock)
    sock.sendall(frame(11, 6, shared_request(13, 5, FRAME_BYTES + 8, shape, FRAME_BYTES)))
    out["past_end"] = answer(sock)
    sock.sendall(frame(11, 7, shared_request(14, 9, 0, shape, FRAME_BYTES)))
    out["unknown"] = answer(sock)
    # Answers into shared memory: a buffer registered writable.
    out_fd = make_memfd(4096, True)
    out_mem = mmap.mmap(out_fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    register(sock, 8, 7, 4096, out_fd, writable=True)
    out["out_ready"] = answer(sock)
    sock.sendall(frame(11, 9, shared_request(15, 5, 0, shape, FRAME_BYTES, out=(7, 64, 1024))))
    out["shared_out"] = answer(sock, {7: out_mem})
    sock.sendall(frame(11, 10, shared_request(16, 5, 0, shape, FRAME_BYTES, out=(5, 0, 1024))))
    out["out_read_only"] = answer(sock)
    os.close(out_fd)
    os.close(unsealed)
    os.close(fd)
    print(json.dumps(out))


def main_drill(query):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[1])
    sock.sendall(frame(13, 1, query.encode()))
    typ, rid, p = read_frame(sock)
    if typ == 14:
        print(json.dumps({"id": rid, "answer": json.loads(p)}))
    elif typ == 127:
        code, flags, msg = code_text(p)
        print(json.dumps({"id": rid, "error": code, "message": msg}))
    else:
        raise SystemExit("unexpected type %d" % typ)


def main():
    if sys.argv[2:] == ["--shm"]:
        return main_shm()
    if sys.argv[2:3] == ["--drill"]:
        return main_drill(sys.argv[3])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[1])
    shape = [1, 3, 66, 200]
    data = struct.pack("<f", 0.5) * (3 * 66 * 200)
    infer = struct.pack("<QQIHH", 99, 0, 1_000_000, 1, 0) + tensor_block("frame", 1, shape, data)
    kind = b"latency"
    control = struct.pack("<BBBBIIfd", 5, 1, 0, len(kind), 5000, 1000, 0.0, 0.5) + padded(kind)
    sock.sendall(frame(7, 1, b"") + frame(1, 2, infer) + frame(3, 3, b"") + frame(5, 4, control))
    out = {}
    while len(out) < 4:
        typ, rid, p = read_frame(sock)
        if typ == 8:
            out["pong"] = rid
        elif typ == 2:
            out["infer"] = dict(infer_response(p), id=rid)
        elif typ == 4:
            out["status"] = json.loads(p)
        elif typ == 6:
            code, _, msg = code_text(p)
            out["control"] = {"id": rid, "code": code, "message": msg}
        elif typ == 127:
            code, flags, msg = code_text(p)
            raise SystemExit("ERROR %d (flags %d): %s" % (code, flags, msg))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
