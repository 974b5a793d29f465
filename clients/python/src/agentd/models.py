"""The daemon's objects as dataclasses (docs/api.md#objects). Each keeps the whole JSON it
came from in ``raw``, so a field a newer daemon adds is never lost."""
from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from .errors import CommandFailed, LimitExceeded, Timeout

T = TypeVar("T")

__all__ = [
    "Health", "Backend", "SandboxInfo", "Usage", "ResourceUsage", "ExecResult", "ProcessInfo",
    "OutputChunk", "ContextInfo", "RichOutput", "CodeError", "RunResult", "FileStat", "Port",
    "Snapshot", "AuditRecord", "WatchEvent", "SessionInfo", "Execution", "decode_output",
]


def from_json(cls: type[T], d: Mapping[str, Any], **extra: Any) -> T:
    """cls built from the keys of d that are its fields (the rest stays in raw)."""
    names = {f.name for f in dataclasses.fields(cls)}  
    kw = {k: v for k, v in d.items() if k in names}
    kw.update(extra)
    if "raw" in names:
        kw["raw"] = dict(d)
    return cls(**kw)


def decode_output(d: Mapping[str, Any], key: str) -> bytes:
    """The bytes of an output field: text, or base64 when ``KEY_encoding`` says so."""
    v = d.get(key)
    if not isinstance(v, str):
        return b""
    if d.get(key + "_encoding") == "base64":
        return base64.b64decode(v)
    return v.encode("utf-8")


@dataclass
class Health:
    status: str
    version: str = ""
    started_ms: int = 0
    active_sandboxes: int = 0
    max_sandboxes: int = 0
    utilization: float = 0.0
    default_backend: str = ""
    draining: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Backend:
    name: str
    available: bool = False
    aliases: list[str] = field(default_factory=list)
    score: int = 0
    capabilities: dict[str, Any] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    platform_features: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None
    enforces: list[str] = field(default_factory=list)
    cannot_enforce: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class SandboxInfo:
    id: str
    backend: str = ""
    state: str = ""
    name: str | None = None
    created_ms: int = 0
    running_execs: int = 0
    session: bool = False
    durable: bool = False
    policy_digest: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)
    unenforced: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    ttl_ms: int | None = None
    expires_at_ms: int | None = None
    idle_timeout_ms: int | None = None
    idle_deadline_ms: int | None = None
    last_activity_ms: int | None = None
    on_expire: str | None = None
    reason: str | None = None
    from_snapshot: str | None = None
    from_snapshot_mode: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Usage:
    id: str
    peak_memory_bytes: int = 0
    cpu_time_ms: int = 0
    cpu_time_limit_ms: int = 0
    cpu_time_remaining_ms: int = 0
    wall_time_ms: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ResourceUsage:
    peak_memory_bytes: int = 0
    cpu_time_ms: int = 0
    wall_time_ms: int = 0
    bytes_written: int = 0
    bytes_read: int = 0


@dataclass
class ExecResult:
    """A command's end (docs/exit-codes.md#json-output). ``stdout``/``stderr`` are text
    (undecodable bytes replaced), ``stdout_bytes``/``stderr_bytes`` the exact bytes."""
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    duration_ms: int = 0
    timed_out: bool = False
    limit_hit: str | None = None
    output_truncated: bool = False
    term_signal: int | None = None
    unenforced: list[str] = field(default_factory=list)
    usage: ResourceUsage = field(default_factory=ResourceUsage)
    cancelled: bool = False
    reason: str | None = None
    backend: str | None = None
    sandbox_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.limit_hit is None

    @staticmethod
    def from_json(d: Mapping[str, Any], stdout: bytes | None = None,
                  stderr: bytes | None = None) -> "ExecResult":
        out = decode_output(d, "stdout") if stdout is None else stdout
        err = decode_output(d, "stderr") if stderr is None else stderr
        ru = d.get("resource_usage") or {}
        return from_json(ExecResult, d, stdout=out.decode("utf-8", "replace"),
                         stderr=err.decode("utf-8", "replace"), stdout_bytes=out,
                         stderr_bytes=err, usage=from_json(ResourceUsage, ru))

    def check(self) -> "ExecResult":
        """self, or the exception its end is: Timeout (timed out), LimitExceeded (a limit
        killed or cut it: ``limit`` is ``memory``, ``cpu``, ``pids``, ``write``,
        ``output``), CommandFailed (another non-zero exit)."""
        if self.timed_out:
            e: Exception = Timeout(f"timed out after {self.duration_ms} ms (exit "
                                   f"{self.exit_code})", limit=self.limit_hit)
        elif self.limit_hit is not None:
            e = LimitExceeded(f"limit hit: {self.limit_hit} (exit {self.exit_code})",
                              limit=self.limit_hit)
        elif self.exit_code != 0:
            e = CommandFailed(f"exit {self.exit_code}: {self.stderr[-500:]}", self)
        else:
            return self
        setattr(e, "result", self)
        raise e


@dataclass
class ProcessInfo:
    pid: int
    argv: list[str] = field(default_factory=list)
    state: str = ""
    tty: bool = False
    stdin: bool = False
    started_at: int | None = None
    ended_at: int | None = None
    exit_code: int | None = None
    signal: str | int | None = None
    limit_hit: str | None = None
    ended_by: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class OutputChunk:
    """A piece of a background process's output (``dropped``: bytes its ring lost)."""
    stream: str
    data: bytes
    offset: int
    dropped: int = 0

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class ContextInfo:
    id: str
    sandbox_id: str = ""
    language: str = ""
    version: str | None = None
    pid: int | None = None
    created_ms: int = 0
    cells: int = 0
    state: str = ""
    session: bool = False
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class RichOutput:
    """A MIME bundle of a cell: the value of its last expression, a figure, a display()."""
    data: dict[str, str]

    @property
    def formats(self) -> list[str]:
        return list(self.data)

    @property
    def text(self) -> str | None:
        return self.data.get("text/plain")

    @property
    def html(self) -> str | None:
        return self.data.get("text/html")

    @property
    def markdown(self) -> str | None:
        return self.data.get("text/markdown")

    @property
    def svg(self) -> str | None:
        return self.data.get("image/svg+xml")

    @property
    def latex(self) -> str | None:
        return self.data.get("text/latex")

    @property
    def json(self) -> Any:
        v = self.data.get("application/json")
        return json.loads(v) if v is not None else None

    @property
    def png(self) -> bytes | None:
        v = self.data.get("image/png")
        return base64.b64decode(v) if v is not None else None

    @property
    def jpeg(self) -> bytes | None:
        v = self.data.get("image/jpeg")
        return base64.b64decode(v) if v is not None else None


@dataclass
class CodeError:
    name: str
    value: str
    traceback: str = ""


@dataclass
class RunResult:
    """A cell's run (docs/contexts.md#api). ``text`` is the final value as text,
    ``value`` that value's bundle, ``results`` every bundle (figures, display())."""
    status: str
    stdout: str = ""
    stderr: str = ""
    value: RichOutput | None = None
    results: list[RichOutput] = field(default_factory=list)
    error: CodeError | None = None
    exit_code: int | None = None
    duration_ms: int = 0
    timed_out: bool = False
    output_truncated: bool = False
    context_alive: bool = True
    context_id: str = ""
    cell: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str | None:
        return self.value.text if self.value else None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def images(self) -> list[bytes]:
        """Every PNG or JPEG the cell produced, in order."""
        out: list[bytes] = []
        for r in self.results:
            img = r.png or r.jpeg
            if img is not None:
                out.append(img)
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any], stdout: bytes | None = None,
                  stderr: bytes | None = None) -> "RunResult":
        out = decode_output(d, "stdout") if stdout is None else stdout
        err = decode_output(d, "stderr") if stderr is None else stderr
        e = d.get("error")
        return from_json(
            RunResult, d, stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            value=RichOutput(dict(d["result"])) if d.get("result") else None,
            results=[RichOutput(dict(r)) for r in d.get("results") or []],
            error=from_json(CodeError, e) if isinstance(e, Mapping) else None)

    def check(self) -> "RunResult":
        """self, or Timeout / CommandFailed when the cell did not end ``ok``."""
        if self.status == "ok":
            return self
        msg = f"cell {self.status}"
        if self.error:
            msg += f": {self.error.name}: {self.error.value}"
        e: Exception = (Timeout(msg) if self.status == "timeout" else CommandFailed(msg, self))
        setattr(e, "result", self)
        raise e


@dataclass
class FileStat:
    name: str
    type: str = ""
    size: int = 0
    mode: str = ""
    mtime_ms: int = 0
    link_target: str | None = None
    path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    @property
    def is_file(self) -> bool:
        return self.type == "file"


@dataclass
class Port:
    port: int
    address: str = ""
    state: str = ""
    host: str | None = None
    host_port: int | None = None
    path: str | None = None
    opened_ms: int = 0
    connections: int = 0
    accepted: int = 0
    refused: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Snapshot:
    id: str
    name: str | None = None
    sandbox_id: str = ""
    backend: str = ""
    workdir: str = ""
    size_bytes: int = 0
    created_ms: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class AuditRecord:
    seq: int
    action: str = ""
    ts_ms: int = 0
    client_uid: int | None = None
    client: str = ""
    sandbox_id: str | None = None
    argv: Any = None
    policy_digest: str | None = None
    backend: str | None = None
    result: str = ""
    duration_ms: int = 0
    count: int = 1
    first_ms: int | None = None
    last_ms: int | None = None
    hash: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class WatchEvent:
    """A files/watch event: ``watching``, ``create``, ``modify``, ``delete``, ``move``,
    ``overflow`` or ``end``."""
    event: str
    path: str | None = None
    type: str | None = None
    direction: str | None = None
    cookie: int | None = None
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class SessionInfo:
    agent_id: str
    session_id: str
    status: str = ""
    sandbox_id: str = ""
    backend: str = ""
    unenforced: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Execution:
    """A session execution: its ``result`` is a cell's run with the exec output's fields
    (``exit_code``...) in ``result.raw``."""
    execution_id: str
    status: str
    language: str = ""
    result: RunResult | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def exit_code(self) -> int | None:
        r = self.raw.get("result") or {}
        v = r.get("exit_code", self.raw.get("exit_code"))
        return v if isinstance(v, int) else None
