"""agentd: a Python SDK for agentd's daemon API (sandboxes for untrusted AI-agent code).

    from agentd import Client, Policy
    with Client() as client, client.create(Policy("standard").memory_mib(256)) as sb:
        print(sb.exec(["python3", "-c", "print(6 * 7)"]).stdout)

Standard library only; ``agentd.aio`` has the same calls for asyncio, ``agentd.tools``
exposes a sandbox to an LLM as function-calling tools."""
from .aio import AsyncClient, AsyncSandbox
from .attach import Attachment
from .client import (Client, Context, Contexts, Files, Ports, Process, Processes, Sandbox,
                     Session)
from .errors import (AgentdError, BadRequest, CommandFailed, Conflict, ConnectionFailed,
                     LimitExceeded, NotFound, NotSupported, ProtocolError, ServerError, Timeout,
                     Unauthorized, Unavailable)
from .models import (AuditRecord, Backend, CodeError, ContextInfo, ExecResult, Execution,
                     FileStat, Health, OutputChunk, Port, ProcessInfo, ResourceUsage,
                     RichOutput, RunResult, SandboxInfo, SessionInfo, Snapshot, Usage,
                     WatchEvent)
from .policy import Policy
from .tools import SandboxTools, truncate

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncSandbox", "Attachment", "Client", "Context", "Contexts", "Files", "Ports",
    "Process", "Processes", "Sandbox", "Session", "AgentdError", "BadRequest",
    "CommandFailed", "Conflict", "ConnectionFailed", "LimitExceeded", "NotFound",
    "NotSupported", "ProtocolError", "ServerError", "Timeout", "Unauthorized", "Unavailable",
    "AuditRecord", "Backend", "CodeError", "ContextInfo", "ExecResult", "Execution",
    "FileStat", "Health", "OutputChunk", "Port", "ProcessInfo", "ResourceUsage",
    "RichOutput", "RunResult", "SandboxInfo", "SessionInfo", "Snapshot", "Usage",
    "WatchEvent", "Policy", "SandboxTools", "truncate", "__version__",
]
