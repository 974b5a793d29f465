"""HTTP/1.1 to the daemon over its unix socket, or over TCP with a bearer token: a sans-IO
response parser (Content-Length, chunked, or up to EOF) shared by a blocking transport
(sockets) and an asyncio one (streams), each keeping idle connections alive for reuse."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Generic, Iterator, Protocol, Sequence, TypeVar

from .errors import ConnectionFailed, ProtocolError, Timeout, error_from_response

MAX_HEAD = 64 * 1024
READ_SIZE = 65536
Query = Sequence[tuple[str, str]]


def default_socket() -> str:
    """The daemon's socket as the CLI finds it (src/common/paths.c): $AGENTD_SOCKET, else
    /run/agentd/agentd.sock as root, else $XDG_RUNTIME_DIR/agentd.sock (or /tmp)."""
    env = os.environ.get("AGENTD_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/agentd/agentd.sock"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "agentd.sock")


@dataclass
class Endpoint:
    """Where the daemon is: a unix socket path, or host and port with a bearer token."""
    socket_path: str | None = None
    host: str | None = None
    port: int = 0
    token: str | None = None

    @staticmethod
    def make(socket_path: str | None, url: str | None, token: str | None,
             token_file: str | None) -> "Endpoint":
        if token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().rstrip("\r\n")
        if url is None and socket_path is None:
            url = os.environ.get("AGENTD_URL") or None
            if token is None and url is not None:
                token = os.environ.get("AGENTD_TOKEN") or None
        if url is not None:
            u = urllib.parse.urlsplit(url)
            if u.scheme != "http" or not u.hostname or not u.port:
                raise ValueError(f"url {url!r}: expected http://HOST:PORT")
            if token is None:
                raise ValueError("a TCP daemon needs a bearer token (token= or token_file=)")
            return Endpoint(host=u.hostname, port=u.port, token=token)
        return Endpoint(socket_path=socket_path or default_socket())

    def describe(self) -> str:
        return f"{self.host}:{self.port}" if self.host else str(self.socket_path)


def build_target(path: str, query: Query | None = None) -> str:
    if not query:
        return path
    return path + "?" + urllib.parse.urlencode(list(query), quote_via=urllib.parse.quote,
                                               safe="")


def quote_seg(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def build_request(ep: Endpoint, method: str, target: str, body: bytes,
                  content_type: str | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: agentd", f"Content-Length: {len(body)}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if ep.token:
        lines.append(f"Authorization: Bearer {ep.token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def encode_body(json_body: Any, data: bytes | None) -> bytes:
    if data is not None:
        return data
    if json_body is None:
        return b""
    return json.dumps(json_body, ensure_ascii=False).encode("utf-8")


@dataclass
class Head:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class ResponseParser:
    """Feed it the bytes read; it returns body bytes as they complete and sets ``head`` and
    ``done``. Bounds the head and the chunk-size lines; never trusts a size beyond
    parsing it."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.head: Head | None = None
        self.done = False
        self.keep_alive = True
        self._state = "head"
        self._left = 0
        self.got_bytes = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while not self.done:
            if not self._step(out):
                break
        return out

    def feed_head(self, data: bytes) -> list[bytes]:
        """feed() while the head is awaited: EOF there is a connection the daemon closed."""
        if not data:
            raise ConnectionFailed("the daemon closed the connection before answering")
        self.got_bytes = True
        return self.feed(data)

    def may_retry(self, e: BaseException, reused: bool, attempt: int) -> bool:
        """A request on a kept-alive connection the daemon had closed (nothing came back)
        is sent again once on a new one."""
        return (isinstance(e, ConnectionFailed) and reused and not self.got_bytes
                and attempt == 0)

    def feed_eof(self) -> None:
        if self._state == "eof":
            self.done = True
            self.keep_alive = False
            return
        if not self.done:
            raise ConnectionFailed("the daemon closed the connection mid-answer")

    def _line(self, limit: int) -> bytes | None:
        i = self.buf.find(b"\r\n")
        if i < 0:
            if len(self.buf) > limit:
                raise ProtocolError("the daemon sent an over-long line")
            return None
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _step(self, out: list[bytes]) -> bool:
        if self._state == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise ProtocolError("the daemon's answer head is over 64 KiB")
                return False
            raw = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[:end + 4]
            self._parse_head(raw)
            return True
        if self._state == "length":
            if not self.buf and self._left:
                return False
            n = min(self._left, len(self.buf))
            if n:
                out.append(bytes(self.buf[:n]))
                del self.buf[:n]
            self._left -= n
            if self._left == 0:
                self.done = True
            return not self.done and bool(self.buf)
        if self._state == "eof":
            if self.buf:
                out.append(bytes(self.buf))
                self.buf.clear()
            return False
        if self._state == "size":
            line = self._line(1024)
            if line is None:
                return False
            try:
                self._left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if self._left < 0:
                raise ProtocolError("negative chunk size")
            self._state = "data" if self._left else "trailer"
            return True
        if self._state == "data":
            if not self.buf:
                return False
            n = min(self._left, len(self.buf))
            out.append(bytes(self.buf[:n]))
            del self.buf[:n]
            self._left -= n
            if self._left == 0:
                self._state = "crlf"
            return True
        if self._state == "crlf":
            if len(self.buf) < 2:
                return False
            if self.buf[:2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            del self.buf[:2]
            self._state = "size"
            return True
        # trailer: lines until an empty one
        line = self._line(MAX_HEAD)
        if line is None:
            return False
        if line == b"":
            self.done = True
        return not self.done

    def _parse_head(self, raw: str) -> None:
        lines = raw.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        head = Head(int(parts[1]))
        for h in lines[1:]:
            k, sep, v = h.partition(":")
            if sep:
                head.headers[k.strip().lower()] = v.strip()
        self.head = head
        if head.headers.get("connection", "").lower() == "close":
            self.keep_alive = False
        if head.status in (204, 304) or 100 <= head.status < 200:
            self.done = True
        elif "chunked" in head.headers.get("transfer-encoding", "").lower():
            self._state = "size"
        elif "content-length" in head.headers:
            try:
                self._left = int(head.headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            self._state = "length"
            self.done = self._left == 0
        else:
            self._state = "eof"
            self.keep_alive = False


def raise_for_status(head: Head, body: bytes) -> None:
    if head.status < 400:
        return
    try:
        parsed: Any = json.loads(body) if body[:1] == b"{" else None
    except ValueError:
        parsed = None
    raise error_from_response(head.status, parsed, body[:200].decode("utf-8", "replace"))


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise ProtocolError(f"the daemon's answer is not JSON: {e}") from None


def split_lines(pending: bytearray, chunk: bytes) -> list[bytes]:
    """Complete NDJSON lines from the bytes so far (an HTTP chunk may end mid-line)."""
    pending += chunk
    out: list[bytes] = []
    while True:
        i = pending.find(b"\n")
        if i < 0:
            return out
        line = bytes(pending[:i])
        del pending[:i + 1]
        if line.strip():
            out.append(line)


def decode_line(line: bytes) -> dict[str, Any]:
    obj = parse_json(line)
    if not isinstance(obj, dict):
        raise ProtocolError("a stream line is not a JSON object")
    return obj


C = TypeVar("C", bound="_Closable")


class _Closable(Protocol):
    reused: bool

    def close(self) -> None: ...


class _Pool(Generic[C]):
    """Idle kept-alive connections (at most 8) for the next request."""

    def __init__(self) -> None:
        self._idle: list[C] = []
        self._lock = threading.Lock()

    def _take(self) -> C | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _release(self, conn: C) -> None:
        conn.reused = True
        with self._lock:
            if len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()

    def _drain(self) -> list[C]:
        with self._lock:
            idle, self._idle = self._idle, []
        return idle


class _Response(Generic[C]):
    """What both transports' answers share: the head, the connection until the end (then
    back to the pool when it can be reused), close() to drop it early."""

    def __init__(self, pool: _Pool[C], conn: C, parser: "ResponseParser",
                 first: list[bytes]) -> None:
        self._pool = pool
        self._conn: C | None = conn
        self._p = parser
        self._first = first
        assert parser.head is not None
        self.head: Head = parser.head

    def _take_first(self) -> list[bytes]:
        first, self._first = self._first, []
        return [b for b in first if b]

    def _feed(self, data: bytes) -> list[bytes]:
        if not data:
            self._p.feed_eof()
            return []
        return [b for b in self._p.feed(data) if b]

    def _finish(self) -> None:
        if self._conn is not None:
            if self._p.keep_alive and not self._p.buf:
                self._pool._release(self._conn)
            else:
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def prepare(ep: Endpoint, method: str, path: str, query: Query | None, json_body: Any,
            data: bytes | None, content_type: str | None) -> bytes:
    body = encode_body(json_body, data)
    if content_type is None and json_body is not None:
        content_type = "application/json"
    return build_request(ep, method, build_target(path, query), body, content_type)


def lines_of(pending: bytearray, chunk: bytes) -> list[dict[str, Any]]:
    return [decode_line(line) for line in split_lines(pending, chunk)]


def rest_of(pending: bytearray) -> list[dict[str, Any]]:
    return [decode_line(bytes(pending))] if pending.strip() else []


def connect_error(ep: Endpoint, e: OSError) -> ConnectionFailed:
    return ConnectionFailed(f"connect to the daemon at {ep.describe()}: {e.strerror or e} "
                            "(is `agentd serve` running? AGENTD_SOCKET or socket=)")


# ---------------------------------------------------------------- blocking transport

class _Conn:
    def __init__(self, ep: Endpoint, timeout: float | None) -> None:
        try:
            if ep.socket_path is not None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(ep.socket_path)
            else:
                self.sock = socket.create_connection((ep.host or "", ep.port), timeout)
        except OSError as e:
            raise connect_error(ep, e) from None
        self.reused = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class SyncResponse(_Response[_Conn]):
    """An answer being read: ``head``, then ``chunks()`` (or ``lines()``) until done.
    ``close()`` before the end drops the connection (the daemon cancels what it ran)."""

    def __init__(self, pool: _Pool[_Conn], conn: _Conn, parser: ResponseParser,
                 first: list[bytes], deadline: float | None) -> None:
        super().__init__(pool, conn, parser, first)
        self._deadline = deadline

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self._take_first()
            while not self._p.done:
                assert self._conn is not None
                yield from self._feed(_recv(self._conn, self._deadline))
        except BaseException:
            self.close()
            raise
        self._finish()

    def lines(self) -> Iterator[dict[str, Any]]:
        pending = bytearray()
        for chunk in self.chunks():
            yield from lines_of(pending, chunk)
        yield from rest_of(pending)

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def __enter__(self) -> "SyncResponse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recv(conn: _Conn, deadline: float | None) -> bytes:
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the client's timeout passed: the call was cancelled")
        conn.sock.settimeout(left)
    else:
        conn.sock.settimeout(None)
    try:
        return conn.sock.recv(READ_SIZE)
    except socket.timeout:
        raise Timeout("the client's timeout passed: the call was cancelled") from None
    except OSError as e:
        raise ConnectionFailed(f"reading the daemon's answer: {e}") from None


class SyncTransport(_Pool[_Conn]):
    def __init__(self, ep: Endpoint, timeout: float | None = 60.0) -> None:
        super().__init__()
        self.ep = ep
        self.timeout = timeout

    def close(self) -> None:
        for c in self._drain():
            c.close()

    def open(self, method: str, path: str, query: Query | None = None, *,
             json_body: Any = None, data: bytes | None = None,
             content_type: str | None = None, timeout: float | None = None,
             stream: bool = False) -> SyncResponse:
        """Send a request and read its head. timeout: the client's deadline for the whole
        answer (default the transport's for plain calls, none for streams)."""
        req = prepare(self.ep, method, path, query, json_body, data, content_type)
        if timeout is None and not stream:
            timeout = self.timeout
        deadline = time.monotonic() + timeout if timeout is not None else None
        for attempt in range(2):
            conn = self._take() or _Conn(self.ep, self.timeout)
            parser = ResponseParser()
            first: list[bytes] = []
            try:
                try:
                    conn.sock.sendall(req)
                except OSError:
                    pass    # the daemon may answer before reading the body (413): read it
                while parser.head is None:
                    first += parser.feed_head(_recv(conn, deadline))
            except BaseException as e:
                conn.close()
                if parser.may_retry(e, conn.reused, attempt):
                    continue    # an idle keep-alive connection the daemon had closed
                raise
            return SyncResponse(self, conn, parser, first, deadline)
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, query: Query | None = None, *,
             json_body: Any = None, data: bytes | None = None,
             content_type: str | None = None, timeout: float | None = None) -> bytes:
        """A whole answer's body; an error status raised as its exception."""
        r = self.open(method, path, query, json_body=json_body, data=data,
                      content_type=content_type, timeout=timeout)
        body = r.read()
        raise_for_status(r.head, body)
        return body

    def stream(self, method: str, path: str, query: Query | None = None, *,
               json_body: Any = None, timeout: float | None = None) -> SyncResponse:
        """A streamed answer, its status checked (an error status raised)."""
        r = self.open(method, path, query, json_body=json_body, timeout=timeout, stream=True)
        if r.head.status >= 400:
            raise_for_status(r.head, r.read())
        return r


# ---------------------------------------------------------------- asyncio transport

class _AConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    @staticmethod
    async def open(ep: Endpoint) -> "_AConn":
        try:
            if ep.socket_path is not None:
                r, w = await asyncio.open_unix_connection(ep.socket_path, limit=READ_SIZE)
            else:
                r, w = await asyncio.open_connection(ep.host, ep.port, limit=READ_SIZE)
        except OSError as e:
            raise connect_error(ep, e) from None
        return _AConn(r, w)

    async def recv(self) -> bytes:
        try:
            return await self.reader.read(READ_SIZE)
        except OSError as e:
            raise ConnectionFailed(f"reading the daemon's answer: {e}") from None

    def close(self) -> None:
        self.writer.close()


class AsyncResponse(_Response[_AConn]):
    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for b in self._take_first():
                yield b
            while not self._p.done:
                assert self._conn is not None
                for b in self._feed(await self._conn.recv()):
                    yield b
        except BaseException:
            self.close()
            raise
        self._finish()

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        pending = bytearray()
        async for chunk in self.chunks():
            for line in lines_of(pending, chunk):
                yield line
        for line in rest_of(pending):
            yield line

    async def read(self) -> bytes:
        return b"".join([b async for b in self.chunks()])


class AsyncTransport(_Pool[_AConn]):
    def __init__(self, ep: Endpoint, timeout: float | None = 60.0) -> None:
        super().__init__()
        self.ep = ep
        self.timeout = timeout

    async def close(self) -> None:
        for c in self._drain():
            c.close()
            try:
                await c.writer.wait_closed()
            except OSError:
                pass

    async def open(self, method: str, path: str, query: Query | None = None, *,
                   json_body: Any = None, data: bytes | None = None,
                   content_type: str | None = None) -> AsyncResponse:
        req = prepare(self.ep, method, path, query, json_body, data, content_type)
        for attempt in range(2):
            conn = self._take() or await _AConn.open(self.ep)
            parser = ResponseParser()
            first: list[bytes] = []
            try:
                try:
                    conn.writer.write(req)
                    await conn.writer.drain()
                except OSError:
                    pass
                while parser.head is None:
                    first += parser.feed_head(await conn.recv())
            except BaseException as e:
                conn.close()
                if parser.may_retry(e, conn.reused, attempt):
                    continue
                raise
            return AsyncResponse(self, conn, parser, first)
        raise AssertionError("unreachable")

    async def call(self, method: str, path: str, query: Query | None = None, *,
                   json_body: Any = None, data: bytes | None = None,
                   content_type: str | None = None, timeout: float | None = None) -> bytes:
        async def go() -> bytes:
            r = await self.open(method, path, query, json_body=json_body, data=data,
                                content_type=content_type)
            body = await r.read()
            raise_for_status(r.head, body)
            return body
        t = timeout if timeout is not None else self.timeout
        try:
            return await asyncio.wait_for(go(), t)
        except asyncio.TimeoutError:
            raise Timeout("the client's timeout passed: the call was cancelled") from None

    async def stream(self, method: str, path: str, query: Query | None = None, *,
                     json_body: Any = None) -> AsyncResponse:
        r = await self.open(method, path, query, json_body=json_body)
        if r.head.status >= 400:
            raise_for_status(r.head, await r.read())
        return r
