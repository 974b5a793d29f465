"""The asyncio client: the same calls as agentd.Client, awaited, over asyncio streams (no
threads). Cancelling a task that runs an exec or a cell closes its connection: the daemon
kills the command. Callbacks may be plain functions or coroutines."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, List, AsyncIterator, Callable, TypeVar

from . import _ops as ops
from ._http import AsyncResponse, AsyncTransport, Endpoint, parse_json
from ._stream import (OutputStream, ProcessOutput, call_piece, pack_dir, safe_extract,
                      watch_event)
from .client import GRACE, argv_of
from .errors import NotFound, Timeout
from .models import (AuditRecord, Backend, ContextInfo, ExecResult, Execution, FileStat,
                     Health, OutputChunk, Port, ProcessInfo, RichOutput, RunResult,
                     SandboxInfo, SessionInfo, Snapshot, Usage, WatchEvent)
from .policy import Policy

T = TypeVar("T")
TextCallback = Callable[[str], object]
ResultCallback = Callable[[RichOutput], object]

__all__ = ["AsyncClient", "AsyncSandbox", "AsyncFiles", "AsyncPorts", "AsyncProcesses",
           "AsyncProcess", "AsyncContexts", "AsyncContext", "AsyncSession"]


def _deadline(timeout: float | None, client_timeout: float | None) -> float | None:
    if client_timeout is not None:
        return client_timeout
    return timeout + GRACE if timeout is not None else None


async def _with_deadline(coro: Any, deadline: float | None) -> Any:
    try:
        return await asyncio.wait_for(coro, deadline)
    except asyncio.TimeoutError:
        raise Timeout("the client's timeout passed: the call was cancelled") from None


async def _pump(r: AsyncResponse, st: OutputStream, on_stdout: TextCallback | None,
                on_stderr: TextCallback | None, on_result: ResultCallback | None) -> None:
    try:
        async for line in r.lines():
            for piece in st.feed(line):
                v = call_piece(piece, on_stdout, on_stderr, on_result)
                if inspect.isawaitable(v):
                    await v
    finally:
        r.close()


class AsyncClient:
    """``async with AsyncClient() as client:``; arguments as for agentd.Client."""

    def __init__(self, socket: str | None = None, *, url: str | None = None,
                 token: str | None = None, token_file: str | None = None,
                 timeout: float = 60.0) -> None:
        self.endpoint = Endpoint.make(socket, url, token, token_file)
        self.transport = AsyncTransport(self.endpoint, timeout)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _do(self, req: ops.Req[T], timeout: float | None = None) -> T:
        body = await self.transport.call(req.method, req.path, req.query, json_body=req.body,
                                         data=req.data, content_type=req.content_type,
                                         timeout=timeout)
        return req.parse(body if req.raw else parse_json(body))

    async def health(self) -> Health:
        return await self._do(ops.health())

    async def metrics(self) -> str:
        return await self._do(ops.metrics())

    async def backends(self) -> List[Backend]:
        return await self._do(ops.backends())

    async def backend(self, name: str) -> Backend:
        return await self._do(ops.backend(name))

    probe = backends

    async def audit(self, since: int | str | None = None) -> List[AuditRecord]:
        return await self._do(ops.audit(since))

    async def audit_verify(self) -> dict[str, Any]:
        return await self._do(ops.audit_verify())

    async def create(self, policy: Policy | dict[str, Any] | None = None, *,
                     backend: str | None = None, name: str | None = None,
                     allow_degraded: bool | None = None, ttl: float | None = None,
                     idle_timeout: float | None = None, on_expire: str | None = None,
                     from_snapshot: str | None = None,
                     from_snapshot_copy: bool | None = None) -> "AsyncSandbox":
        info = await self._do(ops.create(policy, backend, name, allow_degraded, ttl,
                                         idle_timeout, on_expire, from_snapshot,
                                         from_snapshot_copy))
        return AsyncSandbox(self, info)

    async def get(self, id_or_name: str) -> "AsyncSandbox":
        return AsyncSandbox(self, await self._do(ops.get(id_or_name)))

    async def list(self, *, labels: dict[str, str] | None = None, state: str | None = None,
                   backend: str | None = None,
                   name: str | None = None) -> List["AsyncSandbox"]:
        infos = await self._do(ops.list_sandboxes(labels, state, backend, name))
        return [AsyncSandbox(self, i) for i in infos]

    async def snapshots(self) -> List[Snapshot]:
        return await self._do(ops.snapshots())

    async def snapshot(self, id_or_name: str) -> Snapshot:
        return await self._do(ops.get_snapshot(id_or_name))

    async def delete_snapshot(self, id_or_name: str) -> None:
        await self._do(ops.delete_snapshot(id_or_name))

    async def session(self, agent: str, policy: Policy | dict[str, Any] | None = None, *,
                      backend: str | None = None,
                      allow_degraded: bool | None = None) -> "AsyncSession":
        info = await self._do(ops.session_create(agent, policy, backend, allow_degraded))
        return AsyncSession(self, info)


class AsyncSandbox:
    """``async with await client.create() as sb:`` destroys it on exit."""

    def __init__(self, client: AsyncClient, info: SandboxInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self.files = AsyncFiles(self)
        self.ports = AsyncPorts(self)
        self.processes = AsyncProcesses(self)
        self.contexts = AsyncContexts(self)
        self._default_contexts: dict[str, AsyncContext] = {}

    def __repr__(self) -> str:
        return f"AsyncSandbox({self.id!r}, name={self.info.name!r}, state={self.info.state!r})"

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    @property
    def name(self) -> str | None:
        return self.info.name

    async def refresh(self) -> SandboxInfo:
        self.info = await self.client._do(ops.get(self.id))
        return self.info

    async def destroy(self) -> None:
        try:
            await self.client._do(ops.destroy(self.id))
        except NotFound:
            pass

    async def exec(self, cmd: str | list[str], *, env: dict[str, str] | None = None,
                   workdir: str | None = None, stdin: bytes | str | None = None,
                   timeout: float | None = None, on_stdout: TextCallback | None = None,
                   on_stderr: TextCallback | None = None, check: bool = False,
                   client_timeout: float | None = None) -> ExecResult:
        """As Sandbox.exec; cancelling the awaiting task kills the command."""
        streamed = on_stdout is not None or on_stderr is not None
        body = ops.exec_body(argv_of(cmd), env, workdir, stdin, timeout, streamed)
        deadline = _deadline(timeout, client_timeout)
        if not streamed:
            res: ExecResult = await self.client._do(ops.exec_(self.id, body),
                                                    timeout=deadline or 1e9)
        else:
            st = OutputStream("exec")

            async def go() -> None:
                r = await self.client.transport.stream("POST", ops.sb(self.id, "/exec"),
                                                       json_body=body)
                await _pump(r, st, on_stdout, on_stderr, None)
            await _with_deadline(go(), deadline)
            res = st.exec_result()
        return res.check() if check else res

    async def suspend(self) -> SandboxInfo:
        self.info = await self.client._do(ops.suspend(self.id))
        return self.info

    async def resume(self) -> SandboxInfo:
        self.info = await self.client._do(ops.resume(self.id))
        return self.info

    async def usage(self) -> Usage:
        return await self.client._do(ops.usage(self.id))

    async def set_timeout(self, ttl: float | None = None, idle_timeout: float | None = None,
                          on_expire: str | None = None) -> SandboxInfo:
        self.info = await self.client._do(ops.set_timeout(self.id, ttl, idle_timeout,
                                                          on_expire))
        return self.info

    async def set_network(self, mode: str, allow: list[str] | None = None) -> SandboxInfo:
        self.info = await self.client._do(ops.set_network(self.id, mode, allow))
        return self.info

    async def snapshot(self, name: str | None = None) -> Snapshot:
        return await self.client._do(ops.snapshot(self.id, name))

    async def snapshots(self) -> List[Snapshot]:
        return await self.client._do(ops.sandbox_snapshots(self.id))

    async def restore(self, snapshot: str | Snapshot) -> None:
        snap = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        await self.client._do(ops.restore(self.id, snap))

    async def fork(self, snapshot_name: str | None = None, *, copy: bool | None = None,
                   **create: Any) -> "AsyncSandbox":
        snap = await self.snapshot(snapshot_name)
        create.setdefault("policy", self.info.spec)
        return await self.client.create(from_snapshot=snap.id, from_snapshot_copy=copy,
                                        **create)

    async def run_code(self, code: str, language: str = "python", *,
                       timeout: float | None = None, env: dict[str, str] | None = None,
                       on_stdout: TextCallback | None = None,
                       on_stderr: TextCallback | None = None,
                       on_result: ResultCallback | None = None) -> RunResult:
        ctx = self._default_contexts.get(language)
        if ctx is None or (await ctx.refresh()).state == "gone":
            ctx = self._default_contexts[language] = await self.contexts.create(language)
        return await ctx.run(code, timeout=timeout, env=env, on_stdout=on_stdout,
                             on_stderr=on_stderr, on_result=on_result)


class AsyncFiles:
    def __init__(self, sb: AsyncSandbox) -> None:
        self._sb = sb

    async def _do(self, req: ops.Req[T]) -> T:
        return await self._sb.client._do(req)

    async def write(self, path: str, data: bytes | str, *, parents: bool = False) -> None:
        await self._do(ops.file_write(self._sb.id, path, data, parents))

    async def read(self, path: str) -> bytes:
        return await self._do(ops.file_read(self._sb.id, path))

    async def read_text(self, path: str) -> str:
        return (await self.read(path)).decode("utf-8", "replace")

    async def list(self, path: str = ".") -> List[FileStat]:
        return await self._do(ops.file_list(self._sb.id, path))

    async def stat(self, path: str) -> FileStat:
        return await self._do(ops.file_stat(self._sb.id, path))

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
            return True
        except NotFound:
            return False

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        await self._do(ops.file_mkdir(self._sb.id, path, parents))

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._do(ops.file_remove(self._sb.id, path, recursive))

    async def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None:
        await self._do(ops.file_rename(self._sb.id, src, dst, noreplace))

    async def chmod(self, path: str, mode: int | str) -> None:
        await self._do(ops.file_chmod(self._sb.id, path, mode))

    async def upload_dir(self, local_dir: str, remote_dir: str) -> dict[str, Any]:
        return await self._do(ops.tar_put(self._sb.id, remote_dir, pack_dir(local_dir)))

    async def download_dir(self, remote_dir: str, local_dir: str) -> List[str]:
        tar = await self._sb.client.transport.call(
            "GET", ops.sb(self._sb.id, "/files/tar"), [("path", remote_dir)], timeout=1e9)
        return safe_extract(tar, local_dir)

    async def watch(self, path: str = ".") -> AsyncIterator[WatchEvent]:
        r = await self._sb.client.transport.stream("GET", ops.sb(self._sb.id, "/files/watch"),
                                                   [("path", path)])
        try:
            async for line in r.lines():
                yield watch_event(line)
        finally:
            r.close()


class AsyncPorts:
    def __init__(self, sb: AsyncSandbox) -> None:
        self._sb = sb

    async def open(self, port: int, *, unix: bool = False) -> Port:
        return await self._sb.client._do(ops.port_open(self._sb.id, port, unix))

    async def list(self) -> List[Port]:
        return await self._sb.client._do(ops.port_list(self._sb.id))

    async def close(self, port: int) -> None:
        await self._sb.client._do(ops.port_close(self._sb.id, port))


class AsyncProcesses:
    def __init__(self, sb: AsyncSandbox) -> None:
        self._sb = sb

    async def start(self, cmd: str | list[str], *, env: dict[str, str] | None = None,
                    workdir: str | None = None, stdin: bool = False, tty: bool = False,
                    rows: int | None = None, cols: int | None = None) -> "AsyncProcess":
        info = await self._sb.client._do(ops.process_start(self._sb.id, argv_of(cmd), env,
                                                           workdir, stdin, tty, rows, cols))
        return AsyncProcess(self._sb, info)

    async def list(self) -> List["AsyncProcess"]:
        infos = await self._sb.client._do(ops.process_list(self._sb.id))
        return [AsyncProcess(self._sb, i) for i in infos]

    async def get(self, pid: int) -> "AsyncProcess":
        return AsyncProcess(self._sb, await self._sb.client._do(ops.process_get(self._sb.id,
                                                                                pid)))


class AsyncProcess:
    def __init__(self, sb: AsyncSandbox, info: ProcessInfo) -> None:
        self._sb = sb
        self.info = info
        self.pid = info.pid

    async def _do(self, req: ops.Req[T]) -> T:
        return await self._sb.client._do(req)

    async def refresh(self) -> ProcessInfo:
        self.info = await self._do(ops.process_get(self._sb.id, self.pid))
        return self.info

    async def signal(self, sig: str | int = "TERM") -> ProcessInfo:
        self.info = await self._do(ops.process_signal(self._sb.id, self.pid, sig))
        return self.info

    async def kill(self) -> ProcessInfo:
        self.info = await self._do(ops.process_kill(self._sb.id, self.pid))
        return self.info

    async def write_stdin(self, data: bytes | str, *, close: bool = False) -> int:
        r = await self._do(ops.process_stdin(self._sb.id, self.pid, data, close))
        return int(r["written"])

    async def close_stdin(self) -> None:
        await self._do(ops.process_stdin(self._sb.id, self.pid, None, True))

    async def output(self, *, follow: bool = False, offset: int | None = None,
                     stream: str | None = None) -> AsyncIterator[OutputChunk]:
        po = ProcessOutput()
        r = await self._sb.client.transport.stream(
            "GET", ops.proc(self._sb.id, self.pid, "/output"),
            ops.output_query(offset, follow, stream))
        try:
            async for line in r.lines():
                chunk = po.feed(line)
                if chunk is not None:
                    yield chunk
        finally:
            r.close()
        if po.exit is not None:
            self.info = po.exit

    async def read_output(self, stream: str = "stdout") -> str:
        data = b"".join([c.data async for c in self.output(stream=stream)])
        return data.decode("utf-8", "replace")

    async def wait(self, timeout: float | None = None) -> ProcessInfo:
        async def go() -> None:
            async for _ in self.output(follow=True):
                pass
        await _with_deadline(go(), timeout)
        return self.info if not self.info.running else await self.refresh()


class AsyncContexts:
    def __init__(self, sb: AsyncSandbox) -> None:
        self._sb = sb

    async def create(self, language: str = "python", *, env: dict[str, str] | None = None,
                     workdir: str | None = None) -> "AsyncContext":
        info = await self._sb.client._do(ops.context_create(self._sb.id, language, env,
                                                            workdir))
        return AsyncContext(self._sb, info)

    async def list(self) -> List["AsyncContext"]:
        infos = await self._sb.client._do(ops.context_list(self._sb.id))
        return [AsyncContext(self._sb, i) for i in infos]

    async def get(self, cid: str) -> "AsyncContext":
        return AsyncContext(self._sb, await self._sb.client._do(ops.context_get(self._sb.id,
                                                                                cid)))


class AsyncContext:
    def __init__(self, sb: AsyncSandbox, info: ContextInfo) -> None:
        self._sb = sb
        self.info = info
        self.id = info.id

    async def refresh(self) -> ContextInfo:
        self.info = await self._sb.client._do(ops.context_get(self._sb.id, self.id))
        return self.info

    async def delete(self) -> None:
        await self._sb.client._do(ops.context_delete(self._sb.id, self.id))

    async def run(self, code: str, *, timeout: float | None = None,
                  env: dict[str, str] | None = None, on_stdout: TextCallback | None = None,
                  on_stderr: TextCallback | None = None,
                  on_result: ResultCallback | None = None,
                  client_timeout: float | None = None) -> RunResult:
        streamed = on_stdout is not None or on_stderr is not None or on_result is not None
        body = ops.run_body(code, timeout, env, streamed)
        deadline = _deadline(timeout, client_timeout)
        if not streamed:
            res: RunResult = await self._sb.client._do(
                ops.context_run(self._sb.id, self.id, body), timeout=deadline or 1e9)
            return res
        st = OutputStream("run")

        async def go() -> None:
            r = await self._sb.client.transport.stream(
                "POST", ops.context_run_path(self._sb.id, self.id), json_body=body)
            await _pump(r, st, on_stdout, on_stderr, on_result)
        await _with_deadline(go(), deadline)
        return st.run_result()


class AsyncSession:
    def __init__(self, client: AsyncClient, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.agent_id = info.agent_id
        self.id = info.session_id

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    async def execute(self, code: str, language: str | None = None, *,
                      timeout: float | None = None,
                      env: dict[str, str] | None = None) -> Execution:
        return await self.client._do(ops.session_execute(self.agent_id, self.id, code,
                                                         language, timeout, env),
                                     timeout=_deadline(timeout, None) or 1e9)

    async def executions(self) -> List[dict[str, Any]]:
        return await self.client._do(ops.session_executions(self.agent_id, self.id))

    async def destroy(self) -> None:
        try:
            await self.client._do(ops.session_delete(self.agent_id, self.id))
        except NotFound:
            pass
