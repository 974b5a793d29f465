"""Every call of the daemon API as a request description (method, path, query, body) and the
parse of its answer: the sync and asyncio clients only carry these out, so both speak the
API the same way. Streamed calls (exec, output, watch, tar download) have their own
readers in _stream.py."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from ._http import quote_seg
from .models import (AuditRecord, Backend, ContextInfo, ExecResult, Execution, FileStat,
                     Health, Port, ProcessInfo, RunResult, SandboxInfo, SessionInfo, Snapshot,
                     Usage, from_json)
from .policy import Policy, label_query, spec_of

T = TypeVar("T")


@dataclass
class Req(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    query: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    data: bytes | None = None
    content_type: str | None = None
    raw: bool = False           # parse gets the body's bytes, not its JSON


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, round(seconds * 1000))


def _drop_none(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def sb(sid: str, tail: str = "") -> str:
    return f"/v1/sandboxes/{quote_seg(sid)}{tail}"


def _ident(x: Any) -> Any:
    return x


# ---------------------------------------------------------------- daemon

def health() -> Req[Health]:
    return Req("GET", "/v1/health", lambda j: from_json(Health, j))


def metrics() -> Req[str]:
    return Req("GET", "/v1/metrics", lambda b: bytes(b).decode("utf-8", "replace"), raw=True)


def backends() -> Req[list[Backend]]:
    return Req("GET", "/v1/backends",
               lambda j: [from_json(Backend, b) for b in j["backends"]])


def backend(name: str) -> Req[Backend]:
    return Req("GET", f"/v1/backends/{quote_seg(name)}", lambda j: from_json(Backend, j))


def audit(since: int | str | None) -> Req[list[AuditRecord]]:
    q = [("since", str(since))] if since is not None else []
    return Req("GET", "/v1/audit", lambda j: [from_json(AuditRecord, r) for r in j["records"]],
               query=q)


def audit_verify() -> Req[dict[str, Any]]:
    return Req("GET", "/v1/audit/verify", _ident)


# ---------------------------------------------------------------- sandboxes

def sandbox_info(j: Any) -> SandboxInfo:
    return from_json(SandboxInfo, j)


def create(policy: Policy | dict[str, Any] | None, backend: str | None, name: str | None,
           allow_degraded: bool | None, ttl: float | None, idle_timeout: float | None,
           on_expire: str | None, from_snapshot: str | None,
           from_snapshot_copy: bool | None) -> Req[SandboxInfo]:
    body = _drop_none(spec=spec_of(policy), backend=backend, name=name,
                      allow_degraded=allow_degraded, ttl_ms=ms(ttl),
                      idle_timeout_ms=ms(idle_timeout), on_expire=on_expire,
                      from_snapshot=from_snapshot, from_snapshot_copy=from_snapshot_copy)
    return Req("POST", "/v1/sandboxes", sandbox_info, body=body)


def list_sandboxes(labels: dict[str, str] | None, state: str | None, backend: str | None,
                   name: str | None) -> Req[list[SandboxInfo]]:
    q = list(label_query(labels))
    q += [(k, v) for k, v in (("state", state), ("backend", backend), ("name", name)) if v]
    return Req("GET", "/v1/sandboxes", lambda j: [sandbox_info(s) for s in j["sandboxes"]],
               query=q)


def get(sid: str) -> Req[SandboxInfo]:
    return Req("GET", sb(sid), sandbox_info)


def destroy(sid: str) -> Req[dict[str, Any]]:
    return Req("DELETE", sb(sid), _ident)


def exec_body(argv: list[str], env: dict[str, str] | None, workdir: str | None,
              stdin: bytes | str | None, timeout: float | None,
              stream: bool) -> dict[str, Any]:
    if isinstance(argv, str):
        raise TypeError("argv is a list of strings; use [\"/bin/sh\", \"-c\", cmd] for a "
                        "shell line")
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    return _drop_none(argv=list(argv), env=env, workdir=workdir,
                      stdin=base64.b64encode(stdin).decode() if stdin is not None else None,
                      timeout_ms=ms(timeout), stream=True if stream else None)


def exec_(sid: str, body: dict[str, Any]) -> Req[ExecResult]:
    return Req("POST", sb(sid, "/exec"), ExecResult.from_json, body=body)


def suspend(sid: str) -> Req[SandboxInfo]:
    return Req("POST", sb(sid, "/suspend"), sandbox_info)


def resume(sid: str) -> Req[SandboxInfo]:
    return Req("POST", sb(sid, "/resume"), sandbox_info)


def usage(sid: str) -> Req[Usage]:
    return Req("GET", sb(sid, "/usage"), lambda j: from_json(Usage, j))


def set_timeout(sid: str, ttl: float | None, idle_timeout: float | None,
                on_expire: str | None) -> Req[SandboxInfo]:
    body = _drop_none(ttl_ms=ms(ttl), idle_timeout_ms=ms(idle_timeout), on_expire=on_expire)
    return Req("POST", sb(sid, "/timeout"), sandbox_info, body=body)


def set_network(sid: str, mode: str, allow: list[str] | None) -> Req[SandboxInfo]:
    return Req("PATCH", sb(sid, "/network"), sandbox_info,
               body=_drop_none(mode=mode, allow=allow))


# ---------------------------------------------------------------- snapshots

def snapshot_of(j: Any) -> Snapshot:
    return from_json(Snapshot, j)


def snapshot(sid: str, name: str | None) -> Req[Snapshot]:
    return Req("POST", sb(sid, "/snapshots"), snapshot_of, body=_drop_none(name=name))


def restore(sid: str, snap: str) -> Req[dict[str, Any]]:
    return Req("POST", sb(sid, "/restore"), _ident, body={"snapshot_id": snap})


def sandbox_snapshots(sid: str) -> Req[list[Snapshot]]:
    return Req("GET", sb(sid, "/snapshots"), lambda j: [snapshot_of(s) for s in j["snapshots"]])


def snapshots() -> Req[list[Snapshot]]:
    return Req("GET", "/v1/snapshots", lambda j: [snapshot_of(s) for s in j["snapshots"]])


def get_snapshot(snap: str) -> Req[Snapshot]:
    return Req("GET", f"/v1/snapshots/{quote_seg(snap)}", snapshot_of)


def delete_snapshot(snap: str) -> Req[dict[str, Any]]:
    return Req("DELETE", f"/v1/snapshots/{quote_seg(snap)}", _ident)


# ---------------------------------------------------------------- files

def _pq(path: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("path", path), *extra]


def file_write(sid: str, path: str, data: bytes | str, parents: bool) -> Req[dict[str, Any]]:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    q = _pq(path, ("parents", "1")) if parents else _pq(path)
    return Req("PUT", sb(sid, "/files"), _ident, query=q, data=raw,
               content_type="application/octet-stream")


def file_read(sid: str, path: str) -> Req[bytes]:
    return Req("GET", sb(sid, "/files"), bytes, query=_pq(path), raw=True)


def file_list(sid: str, path: str) -> Req[list[FileStat]]:
    return Req("GET", sb(sid, "/files/list"),
               lambda j: [from_json(FileStat, e) for e in j["entries"]], query=_pq(path))


def file_stat(sid: str, path: str) -> Req[FileStat]:
    return Req("GET", sb(sid, "/files/stat"), lambda j: from_json(FileStat, j),
               query=_pq(path))


def file_mkdir(sid: str, path: str, parents: bool) -> Req[dict[str, Any]]:
    return Req("POST", sb(sid, "/files/mkdir"), _ident,
               body=_drop_none(path=path, parents=True if parents else None))


def file_remove(sid: str, path: str, recursive: bool) -> Req[dict[str, Any]]:
    q = _pq(path, ("recursive", "1")) if recursive else _pq(path)
    return Req("DELETE", sb(sid, "/files"), _ident, query=q)


def file_rename(sid: str, src: str, dst: str, noreplace: bool) -> Req[dict[str, Any]]:
    return Req("POST", sb(sid, "/files/rename"), _ident,
               body=_drop_none(**{"from": src, "to": dst,
                                  "noreplace": True if noreplace else None}))


def file_chmod(sid: str, path: str, mode: int | str) -> Req[dict[str, Any]]:
    m = format(mode, "o") if isinstance(mode, int) else mode
    return Req("POST", sb(sid, "/files/chmod"), _ident, body={"path": path, "mode": m})


def tar_put(sid: str, path: str, tar: bytes) -> Req[dict[str, Any]]:
    return Req("PUT", sb(sid, "/files/tar"), _ident, query=_pq(path), data=tar,
               content_type="application/x-tar")


# ---------------------------------------------------------------- ports

def port_of(j: Any) -> Port:
    return from_json(Port, j)


def port_open(sid: str, port: int, unix: bool) -> Req[Port]:
    return Req("POST", sb(sid, "/ports"), port_of,
               body=_drop_none(port=port, unix=True if unix else None))


def port_list(sid: str) -> Req[list[Port]]:
    return Req("GET", sb(sid, "/ports"), lambda j: [port_of(p) for p in j["ports"]])


def port_close(sid: str, port: int) -> Req[dict[str, Any]]:
    return Req("DELETE", sb(sid, f"/ports/{int(port)}"), _ident)


# ---------------------------------------------------------------- contexts

def context_of(j: Any) -> ContextInfo:
    return from_json(ContextInfo, j)


def context_create(sid: str, language: str, env: dict[str, str] | None,
                   workdir: str | None) -> Req[ContextInfo]:
    return Req("POST", sb(sid, "/contexts"), context_of,
               body=_drop_none(language=language, env=env, workdir=workdir))


def context_list(sid: str) -> Req[list[ContextInfo]]:
    return Req("GET", sb(sid, "/contexts"), lambda j: [context_of(c) for c in j["contexts"]])


def context_get(sid: str, cid: str) -> Req[ContextInfo]:
    return Req("GET", sb(sid, f"/contexts/{quote_seg(cid)}"), context_of)


def context_delete(sid: str, cid: str) -> Req[dict[str, Any]]:
    return Req("DELETE", sb(sid, f"/contexts/{quote_seg(cid)}"), _ident)


def run_body(code: str, timeout: float | None, env: dict[str, str] | None,
             stream: bool) -> dict[str, Any]:
    return _drop_none(code=code, timeout_ms=ms(timeout), env=env,
                      stream=True if stream else None)


def context_run_path(sid: str, cid: str) -> str:
    return sb(sid, f"/contexts/{quote_seg(cid)}/run")


def context_run(sid: str, cid: str, body: dict[str, Any]) -> Req[RunResult]:
    return Req("POST", context_run_path(sid, cid), RunResult.from_json, body=body)


# ---------------------------------------------------------------- processes

def process_of(j: Any) -> ProcessInfo:
    return from_json(ProcessInfo, j)


def proc(sid: str, pid: int, tail: str = "") -> str:
    return sb(sid, f"/processes/{int(pid)}{tail}")


def process_start(sid: str, argv: list[str], env: dict[str, str] | None, workdir: str | None,
                  stdin: bool, tty: bool, rows: int | None,
                  cols: int | None) -> Req[ProcessInfo]:
    body = _drop_none(argv=list(argv), env=env, workdir=workdir,
                      stdin=True if stdin else None, tty=True if tty else None,
                      rows=rows, cols=cols)
    return Req("POST", sb(sid, "/processes"), process_of, body=body)


def process_list(sid: str) -> Req[list[ProcessInfo]]:
    return Req("GET", sb(sid, "/processes"), lambda j: [process_of(p) for p in j["processes"]])


def process_get(sid: str, pid: int) -> Req[ProcessInfo]:
    return Req("GET", proc(sid, pid), process_of)


def process_kill(sid: str, pid: int) -> Req[ProcessInfo]:
    return Req("DELETE", proc(sid, pid), process_of)


def process_signal(sid: str, pid: int, sig: str | int) -> Req[ProcessInfo]:
    return Req("POST", proc(sid, pid, "/signal"), process_of, body={"signal": sig})


def process_stdin(sid: str, pid: int, data: bytes | str | None,
                  close: bool) -> Req[dict[str, Any]]:
    body: dict[str, Any] = {}
    if isinstance(data, str):
        body["data"] = data
    elif data is not None:
        body["data"] = base64.b64encode(data).decode()
        body["encoding"] = "base64"
    if close:
        body["close"] = True
    return Req("POST", proc(sid, pid, "/stdin"), _ident, body=body)


def output_query(offset: int | None, follow: bool, stream: str | None) -> list[tuple[str, str]]:
    q: list[tuple[str, str]] = []
    if offset is not None:
        q.append(("offset", str(offset)))
    if follow:
        q.append(("follow", "1"))
    if stream is not None:
        q.append(("stream", stream))
    return q


# ---------------------------------------------------------------- sessions

def agent_path(agent: str, tail: str = "") -> str:
    return f"/v1/agents/{quote_seg(agent)}/sessions{tail}"


def session_create(agent: str, policy: Policy | dict[str, Any] | None, backend: str | None,
                   allow_degraded: bool | None) -> Req[SessionInfo]:
    return Req("POST", agent_path(agent), lambda j: from_json(SessionInfo, j),
               body=_drop_none(config=spec_of(policy), backend=backend,
                               allow_degraded=allow_degraded))


def execution_of(j: Any) -> Execution:
    r = j.get("result")
    return from_json(Execution, j, result=RunResult.from_json(r) if r else None)


def session_execute(agent: str, sid: str, code: str, language: str | None,
                    timeout: float | None, env: dict[str, str] | None) -> Req[Execution]:
    return Req("POST", agent_path(agent, f"/{quote_seg(sid)}/executions"), execution_of,
               body=_drop_none(code=code, language=language, timeout_ms=ms(timeout),
                               env=env))


def session_executions(agent: str, sid: str) -> Req[list[dict[str, Any]]]:
    return Req("GET", agent_path(agent, f"/{quote_seg(sid)}/executions"),
               lambda j: list(j["executions"]))


def session_delete(agent: str, sid: str) -> Req[dict[str, Any]]:
    return Req("DELETE", agent_path(agent, f"/{quote_seg(sid)}"), _ident)
