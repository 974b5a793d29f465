"""The blocking client: ``Client`` (the daemon) and ``Sandbox`` (one sandbox) with its
``files``, ``ports``, ``processes`` and ``contexts``."""
from __future__ import annotations

from typing import Any, List, Callable, Iterator, TypeVar

from . import _ops as ops
from ._http import Endpoint, SyncTransport, build_target, parse_json
from .attach import Attachment
from ._stream import (OutputStream, ProcessOutput, call_piece, pack_dir, safe_extract,
                      watch_event)
from .errors import NotFound
from .models import (AuditRecord, Backend, ContextInfo, ExecResult, Execution, FileStat,
                     Health, OutputChunk, Port, ProcessInfo, RichOutput, RunResult,
                     SandboxInfo, SessionInfo, Snapshot, Usage, WatchEvent)
from .policy import Policy

T = TypeVar("T")
TextCallback = Callable[[str], object]
ResultCallback = Callable[[RichOutput], object]

# A streamed call without a client-side deadline still ends: the daemon ends an exec at the
# sandbox's wall-time limit. This stands for "no deadline of the client's own".
NO_DEADLINE = 7 * 86400.0
# How long past the daemon's own timeout the client waits before it gives up (cancels).
GRACE = 30.0

__all__ = ["Client", "Sandbox", "Files", "Ports", "Processes", "Process", "Contexts",
           "Context", "Session"]


def argv_of(cmd: str | list[str]) -> List[str]:
    """A shell line runs as /bin/sh -c LINE; a list is the argv as it is."""
    return ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def client_deadline(timeout: float | None, client_timeout: float | None) -> float:
    if client_timeout is not None:
        return client_timeout
    return timeout + GRACE if timeout is not None else NO_DEADLINE


class Client:
    """The daemon: found as the CLI finds it ($AGENTD_SOCKET, /run/agentd/agentd.sock as
    root, $XDG_RUNTIME_DIR/agentd.sock), at ``socket``, or over TCP at ``url``
    (``http://127.0.0.1:PORT``) with a bearer ``token`` (or ``token_file``).
    ``timeout``: seconds a plain call may take (execs and streams have their own)."""

    def __init__(self, socket: str | None = None, *, url: str | None = None,
                 token: str | None = None, token_file: str | None = None,
                 timeout: float = 60.0) -> None:
        self.endpoint = Endpoint.make(socket, url, token, token_file)
        self.transport = SyncTransport(self.endpoint, timeout)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _do(self, req: ops.Req[T], timeout: float | None = None) -> T:
        body = self.transport.call(req.method, req.path, req.query, json_body=req.body,
                                   data=req.data, content_type=req.content_type,
                                   timeout=timeout)
        return req.parse(body if req.raw else parse_json(body))

    # daemon
    def health(self) -> Health:
        return self._do(ops.health())

    def metrics(self) -> str:
        return self._do(ops.metrics())

    def backends(self) -> List[Backend]:
        """Every backend as probed on this host (what ``agentd probe`` shows)."""
        return self._do(ops.backends())

    def backend(self, name: str) -> Backend:
        return self._do(ops.backend(name))

    probe = backends

    def audit(self, since: int | str | None = None) -> List[AuditRecord]:
        return self._do(ops.audit(since))

    def audit_verify(self) -> dict[str, Any]:
        return self._do(ops.audit_verify())

    # sandboxes
    def create(self, policy: Policy | dict[str, Any] | None = None, *,
               backend: str | None = None, name: str | None = None,
               allow_degraded: bool | None = None, ttl: float | None = None,
               idle_timeout: float | None = None, on_expire: str | None = None,
               from_snapshot: str | None = None,
               from_snapshot_copy: bool | None = None) -> "Sandbox":
        """A new sandbox (``with client.create(...) as sb:`` destroys it on exit). ttl and
        idle_timeout in seconds; on_expire ``destroy`` or ``suspend``."""
        info = self._do(ops.create(policy, backend, name, allow_degraded, ttl, idle_timeout,
                                   on_expire, from_snapshot, from_snapshot_copy))
        return Sandbox(self, info)

    def get(self, id_or_name: str) -> "Sandbox":
        return Sandbox(self, self._do(ops.get(id_or_name)))

    def list(self, *, labels: dict[str, str] | None = None, state: str | None = None,
             backend: str | None = None, name: str | None = None) -> List["Sandbox"]:
        return [Sandbox(self, i) for i in self._do(ops.list_sandboxes(labels, state, backend,
                                                                       name))]

    # snapshots of every sandbox
    def snapshots(self) -> List[Snapshot]:
        return self._do(ops.snapshots())

    def snapshot(self, id_or_name: str) -> Snapshot:
        return self._do(ops.get_snapshot(id_or_name))

    def delete_snapshot(self, id_or_name: str) -> None:
        self._do(ops.delete_snapshot(id_or_name))

    # sessions
    def session(self, agent: str, policy: Policy | dict[str, Any] | None = None, *,
                backend: str | None = None,
                allow_degraded: bool | None = None) -> "Session":
        return Session(self, self._do(ops.session_create(agent, policy, backend,
                                                         allow_degraded)))


class Sandbox:
    """One sandbox. ``info`` is what the daemon last said of it (``refresh()``)."""

    def __init__(self, client: Client, info: SandboxInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self.files = Files(self)
        self.ports = Ports(self)
        self.processes = Processes(self)
        self.contexts = Contexts(self)
        self._default_contexts: dict[str, Context] = {}

    def __repr__(self) -> str:
        return f"Sandbox({self.id!r}, name={self.info.name!r}, state={self.info.state!r})"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    @property
    def name(self) -> str | None:
        return self.info.name

    def refresh(self) -> SandboxInfo:
        self.info = self.client._do(ops.get(self.id))
        return self.info

    def destroy(self) -> None:
        """Destroy it; one gone already is no error."""
        try:
            self.client._do(ops.destroy(self.id))
        except NotFound:
            pass

    def exec(self, cmd: str | list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, stdin: bytes | str | None = None,
             timeout: float | None = None, on_stdout: TextCallback | None = None,
             on_stderr: TextCallback | None = None, check: bool = False,
             client_timeout: float | None = None) -> ExecResult:
        """Run a command (a list is its argv, a string a /bin/sh -c line) to its end.

        timeout: seconds before the daemon kills it (exit 124, ``timed_out``).
        on_stdout / on_stderr: called with text as it is printed (streamed; a character
        split across writes arrives whole). client_timeout: seconds before the client gives
        up and closes the connection, which kills the command (raises Timeout); default
        timeout + 30 s. An exception raised by a callback cancels the command the same way.
        check: raise for a non-zero exit, a timeout or a limit (ExecResult.check)."""
        streamed = on_stdout is not None or on_stderr is not None
        body = ops.exec_body(argv_of(cmd), env, workdir, stdin, timeout, streamed)
        deadline = client_deadline(timeout, client_timeout)
        if not streamed:
            res = self.client._do(ops.exec_(self.id, body), timeout=deadline)
        else:
            st = OutputStream("exec")
            with self.client.transport.stream("POST", ops.sb(self.id, "/exec"),
                                              json_body=body, timeout=deadline) as r:
                for line in r.lines():
                    for piece in st.feed(line):
                        call_piece(piece, on_stdout, on_stderr, None)
            res = st.exec_result()
        return res.check() if check else res

    def suspend(self) -> SandboxInfo:
        self.info = self.client._do(ops.suspend(self.id))
        return self.info

    def resume(self) -> SandboxInfo:
        self.info = self.client._do(ops.resume(self.id))
        return self.info

    def usage(self) -> Usage:
        return self.client._do(ops.usage(self.id))

    def set_timeout(self, ttl: float | None = None, idle_timeout: float | None = None,
                    on_expire: str | None = None) -> SandboxInfo:
        """New ttl / idle timeout in seconds from now (0 clears one)."""
        self.info = self.client._do(ops.set_timeout(self.id, ttl, idle_timeout, on_expire))
        return self.info

    def set_network(self, mode: str, allow: list[str] | None = None) -> SandboxInfo:
        """Switch the live network policy: ``none``, or ``allowlist`` with its entries."""
        self.info = self.client._do(ops.set_network(self.id, mode, allow))
        return self.info

    def snapshot(self, name: str | None = None) -> Snapshot:
        return self.client._do(ops.snapshot(self.id, name))

    def snapshots(self) -> List[Snapshot]:
        return self.client._do(ops.sandbox_snapshots(self.id))

    def restore(self, snapshot: str | Snapshot) -> None:
        snap = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        self.client._do(ops.restore(self.id, snap))

    def fork(self, snapshot_name: str | None = None, *, copy: bool | None = None,
             **create: Any) -> "Sandbox":
        """A new sandbox starting from a snapshot of this one taken now (create's keywords
        apply; its policy defaults to this one's)."""
        snap = self.snapshot(snapshot_name)
        create.setdefault("policy", self.info.spec)
        return self.client.create(from_snapshot=snap.id, from_snapshot_copy=copy, **create)

    def run_code(self, code: str, language: str = "python", *, timeout: float | None = None,
                 env: dict[str, str] | None = None, on_stdout: TextCallback | None = None,
                 on_stderr: TextCallback | None = None,
                 on_result: ResultCallback | None = None) -> RunResult:
        """Run code in this sandbox's context of that language, made on first use: state
        (variables, imports) persists between calls."""
        ctx = self._default_contexts.get(language)
        if ctx is None or ctx.refresh().state == "gone":
            ctx = self._default_contexts[language] = self.contexts.create(language)
        return ctx.run(code, timeout=timeout, env=env, on_stdout=on_stdout,
                       on_stderr=on_stderr, on_result=on_result)


class Files:
    """A sandbox's files (docs/api.md#files): paths relative to its workdir or absolute."""

    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb

    def _do(self, req: ops.Req[T]) -> T:
        return self._sb.client._do(req)

    def write(self, path: str, data: bytes | str, *, parents: bool = False) -> None:
        self._do(ops.file_write(self._sb.id, path, data, parents))

    def read(self, path: str) -> bytes:
        return self._do(ops.file_read(self._sb.id, path))

    def read_text(self, path: str) -> str:
        return self.read(path).decode("utf-8", "replace")

    def list(self, path: str = ".") -> List[FileStat]:
        return self._do(ops.file_list(self._sb.id, path))

    def stat(self, path: str) -> FileStat:
        return self._do(ops.file_stat(self._sb.id, path))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except NotFound:
            return False

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        self._do(ops.file_mkdir(self._sb.id, path, parents))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        self._do(ops.file_remove(self._sb.id, path, recursive))

    def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None:
        self._do(ops.file_rename(self._sb.id, src, dst, noreplace))

    def chmod(self, path: str, mode: int | str) -> None:
        self._do(ops.file_chmod(self._sb.id, path, mode))

    def upload_dir(self, local_dir: str, remote_dir: str) -> dict[str, Any]:
        """The contents of a local directory into remote_dir (made as needed), as one tar."""
        return self._do(ops.tar_put(self._sb.id, remote_dir, pack_dir(local_dir)))

    def download_dir(self, remote_dir: str, local_dir: str) -> List[str]:
        """The contents of remote_dir into local_dir; what the sandbox made is checked as
        hostile (no name outside local_dir, nothing written through a symlink)."""
        tar = self._sb.client.transport.call("GET", ops.sb(self._sb.id, "/files/tar"),
                                             [("path", remote_dir)], timeout=NO_DEADLINE)
        return safe_extract(tar, local_dir)

    def watch(self, path: str = ".") -> Iterator[WatchEvent]:
        """Events under path as they happen (``watching`` first); close the iterator (or
        break out of the loop) to stop."""
        with self._sb.client.transport.stream("GET", ops.sb(self._sb.id, "/files/watch"),
                                              [("path", path)]) as r:
            for line in r.lines():
                yield watch_event(line)


class Ports:
    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb

    def open(self, port: int, *, unix: bool = False) -> Port:
        """Forward the sandbox's TCP port to a host loopback port (or a unix socket)."""
        return self._sb.client._do(ops.port_open(self._sb.id, port, unix))

    def list(self) -> List[Port]:
        return self._sb.client._do(ops.port_list(self._sb.id))

    def close(self, port: int) -> None:
        self._sb.client._do(ops.port_close(self._sb.id, port))


class Processes:
    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb

    def start(self, cmd: str | list[str], *, env: dict[str, str] | None = None,
              workdir: str | None = None, stdin: bool = False, tty: bool = False,
              rows: int | None = None, cols: int | None = None) -> "Process":
        """A background process (a server, a shell): it outlives this call."""
        info = self._sb.client._do(ops.process_start(self._sb.id, argv_of(cmd), env, workdir,
                                                     stdin, tty, rows, cols))
        return Process(self._sb, info)

    def list(self) -> List["Process"]:
        return [Process(self._sb, i) for i in self._sb.client._do(ops.process_list(self._sb.id))]

    def get(self, pid: int) -> "Process":
        return Process(self._sb, self._sb.client._do(ops.process_get(self._sb.id, pid)))


class Process:
    def __init__(self, sb: Sandbox, info: ProcessInfo) -> None:
        self._sb = sb
        self.info = info
        self.pid = info.pid

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, state={self.info.state!r})"

    def _do(self, req: ops.Req[T]) -> T:
        return self._sb.client._do(req)

    def refresh(self) -> ProcessInfo:
        self.info = self._do(ops.process_get(self._sb.id, self.pid))
        return self.info

    def signal(self, sig: str | int = "TERM") -> ProcessInfo:
        self.info = self._do(ops.process_signal(self._sb.id, self.pid, sig))
        return self.info

    def kill(self) -> ProcessInfo:
        """SIGKILL its whole tree; the daemon then forgets it."""
        self.info = self._do(ops.process_kill(self._sb.id, self.pid))
        return self.info

    def write_stdin(self, data: bytes | str, *, close: bool = False) -> int:
        return int(self._do(ops.process_stdin(self._sb.id, self.pid, data, close))["written"])

    def close_stdin(self) -> None:
        self._do(ops.process_stdin(self._sb.id, self.pid, None, True))

    def output(self, *, follow: bool = False, offset: int | None = None,
               stream: str | None = None) -> Iterator[OutputChunk]:
        """Its output chunks from offset (what is kept; with follow, on until it ends)."""
        po = ProcessOutput()
        with self._sb.client.transport.stream(
                "GET", ops.proc(self._sb.id, self.pid, "/output"),
                ops.output_query(offset, follow, stream)) as r:
            for line in r.lines():
                chunk = po.feed(line)
                if chunk is not None:
                    yield chunk
        if po.exit is not None:
            self.info = po.exit

    def attach(self, *, offset: int | None = None, foreground: bool = False,
               timeout: float | None = 60.0) -> Attachment:
        """A terminal on this process (started with ``tty=True``): offset=0 replays the
        output kept; foreground=True kills the process when the attachment ends."""
        q = [("offset", str(offset))] if offset is not None else []
        if foreground:
            q.append(("foreground", "1"))
        return Attachment(self._sb.client.endpoint,
                          build_target(ops.proc(self._sb.id, self.pid, "/attach"), q), timeout)

    def read_output(self, stream: str = "stdout") -> str:
        """The text of one stream kept so far."""
        data = b"".join(c.data for c in self.output(stream=stream))
        return data.decode("utf-8", "replace")

    def wait(self, timeout: float | None = None) -> ProcessInfo:
        """Follow its output to its end; its final state (Timeout after timeout seconds)."""
        po = ProcessOutput()
        with self._sb.client.transport.stream(
                "GET", ops.proc(self._sb.id, self.pid, "/output"),
                ops.output_query(None, True, None),
                timeout=timeout if timeout is not None else NO_DEADLINE) as r:
            for line in r.lines():
                po.feed(line)
        self.info = po.exit if po.exit is not None else self.refresh()
        return self.info


class Contexts:
    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb

    def create(self, language: str = "python", *, env: dict[str, str] | None = None,
               workdir: str | None = None) -> "Context":
        info = self._sb.client._do(ops.context_create(self._sb.id, language, env, workdir))
        return Context(self._sb, info)

    def list(self) -> List["Context"]:
        return [Context(self._sb, i) for i in self._sb.client._do(ops.context_list(self._sb.id))]

    def get(self, cid: str) -> "Context":
        return Context(self._sb, self._sb.client._do(ops.context_get(self._sb.id, cid)))


class Context:
    """An interpreter that keeps its state between runs (docs/contexts.md)."""

    def __init__(self, sb: Sandbox, info: ContextInfo) -> None:
        self._sb = sb
        self.info = info
        self.id = info.id

    def refresh(self) -> ContextInfo:
        self.info = self._sb.client._do(ops.context_get(self._sb.id, self.id))
        return self.info

    def delete(self) -> None:
        self._sb.client._do(ops.context_delete(self._sb.id, self.id))

    def run(self, code: str, *, timeout: float | None = None,
            env: dict[str, str] | None = None, on_stdout: TextCallback | None = None,
            on_stderr: TextCallback | None = None, on_result: ResultCallback | None = None,
            client_timeout: float | None = None) -> RunResult:
        """Run a cell: its result (``text``, ``value``, ``error``, ``results`` with images);
        with callbacks, output and rich results are delivered as they come."""
        streamed = on_stdout is not None or on_stderr is not None or on_result is not None
        body = ops.run_body(code, timeout, env, streamed)
        deadline = client_deadline(timeout, client_timeout)
        if not streamed:
            return self._sb.client._do(ops.context_run(self._sb.id, self.id, body),
                                       timeout=deadline)
        st = OutputStream("run")
        with self._sb.client.transport.stream("POST", ops.context_run_path(self._sb.id, self.id),
                                              json_body=body, timeout=deadline) as r:
            for line in r.lines():
                for piece in st.feed(line):
                    call_piece(piece, on_stdout, on_stderr, on_result)
        return st.run_result()


class Session:
    """An agent's session (docs/api.md#sessions): a sandbox of its own whose executions keep
    their interpreter's state per language."""

    def __init__(self, client: Client, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.agent_id = info.agent_id
        self.id = info.session_id

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def execute(self, code: str, language: str | None = None, *,
                timeout: float | None = None, env: dict[str, str] | None = None) -> Execution:
        return self.client._do(ops.session_execute(self.agent_id, self.id, code, language,
                                                   timeout, env),
                               timeout=client_deadline(timeout, None))

    def executions(self) -> List[dict[str, Any]]:
        return self.client._do(ops.session_executions(self.agent_id, self.id))

    def destroy(self) -> None:
        try:
            self.client._do(ops.session_delete(self.agent_id, self.id))
        except NotFound:
            pass
