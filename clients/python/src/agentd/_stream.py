"""Readers of the daemon's streamed answers (NDJSON lines of an exec, a cell, a process's
output, a watch) with one incremental UTF-8 decoder per stream, so that a character whose
bytes arrive in two chunks is delivered whole; and the tar packing and (safe) unpacking of
directory transfers. Shared by the sync and asyncio clients."""
from __future__ import annotations

import base64
import codecs
import errno
import io
import os
import posixpath
import stat
import tarfile
from typing import Any, Callable

from .errors import ConnectionFailed, ProtocolError, error_from_response
from .models import (CodeError, ExecResult, OutputChunk, ProcessInfo, RichOutput, RunResult,
                     WatchEvent, from_json)

# a piece of output for a callback: ("stdout" | "stderr", text) or ("result", RichOutput)
Piece = tuple[str, Any]


def chunk_bytes(line: dict[str, Any]) -> bytes:
    data = line.get("data")
    if not isinstance(data, str):
        return b""
    if line.get("encoding") == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise ProtocolError("a stream chunk is not valid base64") from None
    return data.encode("utf-8")


class TextDecoder:
    """Bytes of one stream in, text out: a multi-byte character split across chunks waits
    for its last byte; bytes that are not UTF-8 become U+FFFD."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.data = bytearray()

    def feed(self, b: bytes) -> str:
        self.data += b
        return self._dec.decode(b, final=False)

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)


class OutputStream:
    """The lines of an exec stream (``exit`` ends it), a context run's (``done``) or a
    session execution's (``done`` with the execution)."""

    def __init__(self, kind: str = "exec") -> None:
        self.kind = kind
        self.dec = {"stdout": TextDecoder(), "stderr": TextDecoder()}
        self.end: dict[str, Any] | None = None
        self.results: list[RichOutput] = []
        self.error: CodeError | None = None

    def feed(self, line: dict[str, Any]) -> list[Piece]:
        if "stream" in line:
            s = line["stream"]
            if s not in self.dec:
                raise ProtocolError(f"unknown stream {s!r}")
            text = self.dec[s].feed(chunk_bytes(line))
            return [(s, text)] if text else []
        if "result" in line and isinstance(line["result"], dict):
            r = RichOutput(dict(line["result"]))
            self.results.append(r)
            return [("result", r)]
        err = line.get("error")
        if isinstance(err, dict):
            if "code" in err and "message" in err:
                raise error_from_response(None, line)
            self.error = from_json(CodeError, err)
            return []
        end = line.get("exit" if self.kind == "exec" else "done")
        if isinstance(end, dict):
            self.end = end
            return [(s, t) for s in ("stdout", "stderr") if (t := self.dec[s].flush())]
        return []

    def _out(self) -> tuple[bytes, bytes]:
        return bytes(self.dec["stdout"].data), bytes(self.dec["stderr"].data)

    def _ended(self) -> dict[str, Any]:
        if self.end is None:
            raise ConnectionFailed("the stream ended before its last line: the daemon went "
                                   "away or cut it")
        return self.end

    def exec_result(self) -> ExecResult:
        out, err = self._out()
        return ExecResult.from_json(self._ended(), stdout=out, stderr=err)

    def run_result(self) -> RunResult:
        out, err = self._out()
        return RunResult.from_json(self._ended(), stdout=out, stderr=err)


class ProcessOutput:
    """The lines of GET .../processes/{pid}/output: chunks, dropped notices, the exit."""

    def __init__(self) -> None:
        self.exit: ProcessInfo | None = None

    def feed(self, line: dict[str, Any]) -> OutputChunk | None:
        if "exit" in line and isinstance(line["exit"], dict):
            self.exit = from_json(ProcessInfo, line["exit"])
            return None
        if isinstance(line.get("error"), dict):
            raise error_from_response(None, line)
        if "stream" not in line:
            return None
        return OutputChunk(stream=str(line["stream"]), data=chunk_bytes(line),
                           offset=int(line.get("offset", 0)),
                           dropped=int(line.get("dropped", 0)))


def watch_event(line: dict[str, Any]) -> WatchEvent:
    if isinstance(line.get("error"), dict):
        raise error_from_response(None, line)
    return from_json(WatchEvent, line)


def call_piece(piece: Piece, on_stdout: Callable[[str], Any] | None,
               on_stderr: Callable[[str], Any] | None,
               on_result: Callable[[RichOutput], Any] | None) -> Any:
    kind, v = piece
    cb: Callable[[Any], Any] | None = {"stdout": on_stdout, "stderr": on_stderr,
                                       "result": on_result}.get(kind)
    return cb(v) if cb is not None else None


# ---------------------------------------------------------------- tar

def pack_dir(local: str) -> bytes:
    """A pax tar of the contents of the local directory (names relative to it; symlinks
    stored as links)."""
    if not os.path.isdir(local):
        raise NotADirectoryError(local)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(local)):
            tar.add(os.path.join(local, name), arcname=name)
    return buf.getvalue()


def _walk_parent(root_fd: int, parts: list[str]) -> int:
    """An fd of the directory parts names beneath root_fd, made as needed, never through a
    symlink (O_NOFOLLOW at each step)."""
    fd = os.dup(root_fd)
    try:
        for p in parts:
            try:
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(p, 0o755, dir_fd=fd)
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except (NotADirectoryError, OSError) as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise ProtocolError(f"tar entry beneath {'/'.join(parts)}: {p} is a symlink "
                                    "or a file (never followed)") from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def safe_extract(tar_bytes: bytes, dest: str) -> list[str]:
    """Unpack a tar that came out of a sandbox (hostile: names, links and modes are
    checked) into dest: no absolute name nor ``..``, nothing written through a symlink
    (each directory is walked with O_NOFOLLOW, files opened O_NOFOLLOW), symlinks kept only
    with a relative target that stays beneath dest, no device, fifo or hard link, modes
    masked to 0777. Returns the names written; raises ProtocolError on a bad name."""
    os.makedirs(dest, exist_ok=True)
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    written: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for m in tar:
                name = m.name.rstrip("/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if name.startswith("/") or ".." in parts:
                    raise ProtocolError(f"tar entry {m.name!r}: outside the directory")
                if not parts:
                    continue
                pfd = _walk_parent(root, parts[:-1])
                try:
                    last = parts[-1]
                    if m.isdir():
                        try:
                            os.mkdir(last, m.mode & 0o777 | 0o700, dir_fd=pfd)
                        except FileExistsError:
                            st = os.stat(last, dir_fd=pfd, follow_symlinks=False)
                            if not stat.S_ISDIR(st.st_mode):
                                raise ProtocolError(f"tar entry {m.name!r}: not a "
                                                    "directory here") from None
                    elif m.isfile():
                        _write_member(tar, m, pfd, last)
                    elif m.issym():
                        target = posixpath.normpath(posixpath.join(
                            posixpath.dirname("/".join(parts)), m.linkname))
                        if m.linkname.startswith("/") or target.startswith(".."):
                            continue    # would point outside dest: left out
                        _unlink_quiet(last, pfd)
                        os.symlink(m.linkname, last, dir_fd=pfd)
                    else:
                        continue        # hard links, devices, fifos: left out
                    written.append("/".join(parts))
                finally:
                    os.close(pfd)
    except tarfile.TarError as e:
        raise ProtocolError(f"the tar from the daemon is malformed: {e}") from None
    finally:
        os.close(root)
    return written


def _unlink_quiet(name: str, dir_fd: int) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise ProtocolError(f"{name}: a directory is in the way")
    os.unlink(name, dir_fd=dir_fd)


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, last: str) -> None:
    _unlink_quiet(last, pfd)
    fd = os.open(last, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 m.mode & 0o777, dir_fd=pfd)
    with os.fdopen(fd, "wb") as out:
        src = tar.extractfile(m)
        if src is not None:
            while True:
                b = src.read(65536)
                if not b:
                    break
                out.write(b)
