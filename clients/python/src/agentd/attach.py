"""A terminal on a process started with ``tty=True`` (docs/api.md#attach): a WebSocket
(RFC 6455) over an HTTP/1.1 upgrade on the daemon's socket. Binary frames carry the
terminal's bytes both ways; text frames the control messages (resize from the client, exit
and error from the daemon)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from typing import Any

from ._http import _Conn, Endpoint, Head, ResponseParser, build_request, raise_for_status
from .errors import ConnectionFailed, ProtocolError, Timeout

__all__ = ["Attachment"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10
MAX_FRAME = 16 << 20


def encode_frame(op: int, payload: bytes) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | op, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | op, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x80 | op, 0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def decode_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """(opcode, payload) of the first complete server frame in buf (removed from it), or
    None while it is incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise ProtocolError("the daemon sent a masked WebSocket frame")
    if not b0 & 0x80:
        raise ProtocolError("the daemon sent a fragmented WebSocket message")
    n, off = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = struct.unpack(">H", bytes(buf[2:4]))[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = struct.unpack(">Q", bytes(buf[2:10]))[0], 10
    if n > MAX_FRAME:
        raise ProtocolError(f"a WebSocket frame of {n} bytes")
    if len(buf) < off + n:
        return None
    payload = bytes(buf[off:off + n])
    del buf[:off + n]
    return b0 & 0x0F, payload


class Attachment:
    """``att = process.attach()``; ``att.send(b"ls\\n")``, ``att.read_until(b"$ ")``,
    ``att.resize(40, 120)``; ``att.recv()`` returns terminal bytes, or None once the process
    ended (``exit_code``, ``signal``) or the daemon closed. ``detach()`` leaves the process
    running (unless attached with foreground=True: then it is killed)."""

    def __init__(self, ep: Endpoint, path: str, timeout: float | None = 60.0) -> None:
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.errors: list[str] = []
        self.output = bytearray()
        self.closed = False
        self._buf = bytearray()
        key = base64.b64encode(os.urandom(16))
        self.sock = _Conn(ep, timeout).sock
        req = build_request(ep, "GET", path, b"", None).replace(
            b"\r\n\r\n", b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n", 1)
        try:
            self.sock.sendall(req)
            head = self._handshake()
        except BaseException:
            self.sock.close()
            raise
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if head.headers.get("sec-websocket-accept") != want:
            self.sock.close()
            raise ProtocolError("the daemon's Sec-WebSocket-Accept does not match the key")

    def _handshake(self) -> Head:
        p = ResponseParser()
        first: list[bytes] = []
        while p.head is None:
            first += p.feed_head(self._read())
        if p.head.status != 101:
            body = bytearray(b"".join(first))
            while not p.done:
                chunk = self._read()
                if not chunk:
                    break
                body += b"".join(p.feed(chunk))
            raise_for_status(p.head, bytes(body))
            raise ProtocolError(f"attach: HTTP {p.head.status} instead of 101")
        self._buf += p.buf      # frames may follow the head at once
        return p.head

    def _read(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("no answer from the attachment in time") from None
        except OSError as e:
            raise ConnectionFailed(f"attach: {e}") from None

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def send(self, data: bytes | str) -> None:
        """Input for the terminal (keys, a paste; b"\\x03" is Ctrl-C)."""
        self.sock.sendall(encode_frame(OP_BINARY, data.encode() if isinstance(data, str)
                                       else data))

    def resize(self, rows: int, cols: int) -> None:
        msg = json.dumps({"type": "resize", "rows": rows, "cols": cols}).encode()
        self.sock.sendall(encode_frame(OP_TEXT, msg))

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next terminal bytes; None when the attachment ended."""
        self.sock.settimeout(timeout)
        while not self.closed:
            fr = decode_frame(self._buf)
            if fr is None:
                data = self._read()
                if not data:
                    self.closed = True
                    break
                self._buf += data
                continue
            op, payload = fr
            if op == OP_BINARY:
                self.output += payload
                return payload
            if op == OP_TEXT:
                self._control(json.loads(payload))
            elif op == OP_PING:
                self.sock.sendall(encode_frame(OP_PONG, payload))
            elif op == OP_CLOSE:
                self.closed = True
        return None

    def _control(self, msg: Any) -> None:
        if isinstance(msg, dict) and msg.get("type") == "exit":
            self.exit_code = msg.get("exit_code")
            self.signal = msg.get("signal")
        elif isinstance(msg, dict) and msg.get("type") == "error":
            self.errors.append(str(msg.get("message")))

    def read_until(self, marker: bytes, timeout: float = 30.0) -> bytes:
        """Everything received until marker shows in the output (Timeout if it does not)."""
        deadline = time.monotonic() + timeout
        start = len(self.output)
        while marker not in self.output[start:]:
            left = deadline - time.monotonic()
            if left <= 0 or self.recv(left) is None and marker not in self.output[start:]:
                raise Timeout(f"{marker!r} did not show in the terminal's output")
        return bytes(self.output[start:])

    def wait(self, timeout: float = 30.0) -> int | None:
        """Read to the end of the attachment; the process's exit code (None: detached)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("the attached process did not end in time")
            self.recv(left)
        return self.exit_code

    def detach(self) -> None:
        """Close the attachment (a close frame, then the socket)."""
        if self.sock.fileno() < 0:
            return
        try:
            if not self.closed:
                self.sock.sendall(encode_frame(OP_CLOSE, struct.pack(">H", 1000)))
        except OSError:
            pass
        self.closed = True
        self.sock.close()
