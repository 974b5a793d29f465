"""A WebSocket client (RFC 6455) written for the tests with the standard library only: the
HTTP upgrade over the daemon's unix socket (or TCP), masked frames out, frames in, and raw
frames for the security tests that send what a well-behaved client never would."""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(op, payload, mask=True, fin=True, rsv=0, length=None):
    """One frame; length overrides the announced payload length (a lying header)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class WSError(Exception):
    pass


class WS:
    """An attachment: ws.send_input(b"..."), ws.resize(r, c), ws.read_until(b"..."),
    ws.messages() for everything the server sent (("binary", bytes), ("text", dict),
    ("close", code, reason))."""

    def __init__(self, sock_path, sid, pid, query="", tcp=None, token=None, timeout=30,
                 headers=None):
        if tcp:
            self.sock = socket.create_connection(tcp, timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(sock_path)
        key = base64.b64encode(os.urandom(16))
        hdrs = {"Host": "agentd", "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": key.decode(), "Sec-WebSocket-Version": "13"}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        path = f"/v1/sandboxes/{sid}/processes/{pid}/attach" + (f"?{query}" if query else "")
        req = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n"
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)   # byte by byte: frames may follow the head at once
            if not chunk:
                raise WSError("closed during the handshake: %r" % head)
            head += chunk
        self.head = head.decode(errors="replace")
        self.status = int(self.head.split(" ", 2)[1])
        if self.status != 101:
            body = self.sock.recv(65536)
            raise WSError(f"HTTP {self.status}: {self.head} {body[:400]!r}")
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        accept = [ln.split(":", 1)[1].strip() for ln in self.head.split("\r\n")
                  if ln.lower().startswith("sec-websocket-accept:")]
        if accept != [want]:
            raise WSError(f"bad Sec-WebSocket-Accept {accept} (want {want})")
        self.buf = b""
        self.output = b""       # every binary payload so far
        self.exit = None        # the exit message
        self.close = None       # (code, reason) of the server's close
        self.errors = []        # error messages

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_input(self, data):
        self.sock.sendall(frame(OP_BINARY, data))

    def send_control(self, obj):
        self.sock.sendall(frame(OP_TEXT, json.dumps(obj).encode()))

    def resize(self, rows, cols):
        self.send_control({"type": "resize", "rows": rows, "cols": cols})

    def detach(self):
        self.sock.sendall(frame(OP_CLOSE, struct.pack(">H", 1000)))

    def _recv(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        b0, b1 = self._recv(2)
        if b1 & 0x80:
            raise WSError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._recv(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._recv(8))[0]
        payload = self._recv(n)
        op = b0 & 0x0F
        if not b0 & 0x80:
            raise WSError("the server fragmented a message")
        if op == OP_BINARY:
            self.output += payload
            return ("binary", payload)
        if op == OP_TEXT:
            msg = json.loads(payload)
            if msg.get("type") == "exit":
                self.exit = msg
            elif msg.get("type") == "error":
                self.errors.append(msg["message"])
            return ("text", msg)
        if op == OP_CLOSE:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.close = (code, payload[2:].decode())
            return ("close", code, payload[2:].decode())
        if op == OP_PONG:
            return ("pong", payload)
        raise WSError(f"unexpected opcode {op}")

    def read_until(self, needle, timeout=30):
        """Frames until needle is in the output (bytes) or the close; returns the output."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            if self.close:
                raise WSError(f"closed {self.close} before {needle!r}: {self.output[-800:]!r}")
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self.read_frame()
            except socket.timeout:
                raise WSError(f"no {needle!r} within {timeout}s: {self.output[-800:]!r}")
        return self.output

    def read_to_close(self, timeout=30):
        """Everything until the server's close frame (or EOF); returns the close."""
        deadline = time.monotonic() + timeout
        while not self.close:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self.read_frame()
            except EOFError:
                break
        return self.close

    def closed_by_server(self, timeout=10):
        """True once the server closed the TCP/unix connection (EOF after any frames)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self.read_frame()
            except (EOFError, ConnectionResetError):
                return True
            except socket.timeout:
                return False
        return False

    def shut(self):
        try:
            self.sock.close()
        except OSError:
            pass
