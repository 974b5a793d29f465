"""The exceptions of the SDK: one class per kind of failure a caller acts on, each carrying
the HTTP status, the daemon's error code and message, and the limit that was hit."""
from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = [
    "AgentdError", "ConnectionFailed", "ProtocolError", "BadRequest", "Unauthorized",
    "NotFound", "Conflict", "LimitExceeded", "NotSupported", "Unavailable", "ServerError",
    "Timeout", "CommandFailed", "error_from_response",
]

# A limit the daemon names in its message: a flag of `agentd serve` (`--max-sandboxes`) or a
# policy key (`limits.max_snapshot_bytes`, `max_output_bytes`).
_LIMIT_RE = re.compile(r"(--max-[a-z-]+|limits\.[a-z_]+|\bmax_[a-z_]+)")


class AgentdError(Exception):
    """Any failure of an agentd call.

    status: the HTTP status (None when no answer came); code: the daemon's error code
    (``not_found``, ``over_capacity``...); message: its message; limit: the limit that was
    hit (``--max-sandboxes``, ``limits.max_snapshot_bytes``, ``memory``...), else None."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 limit: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.limit = limit

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class ConnectionFailed(AgentdError):
    """The daemon could not be reached, or it closed the connection mid-answer."""


class ProtocolError(AgentdError):
    """The daemon's answer was not what the API promises (malformed HTTP or JSON)."""


class BadRequest(AgentdError):
    """400: a bad field, policy, path or id; nothing was changed."""


class Unauthorized(AgentdError):
    """401: TCP without the bearer token, or a wrong one."""


class NotFound(AgentdError):
    """404: no such sandbox, process, context, snapshot, port, file or route."""


class Conflict(AgentdError):
    """409: wrong state (a suspended or gone sandbox, an ended process), a name taken."""


class LimitExceeded(AgentdError):
    """413, 429, 507, or a command a sandbox limit killed (``limit`` says which)."""


class NotSupported(AgentdError):
    """501 (and 405, 415): the backend or the route lacks the operation."""


class Unavailable(AgentdError):
    """503: the daemon is shutting down or shed the connection."""


class ServerError(AgentdError):
    """500: the daemon failed."""


class Timeout(AgentdError):
    """408, a command or cell that timed out (``check=True``), or the client's own deadline
    passed (the call was cancelled: the daemon kills what it ran)."""


class CommandFailed(AgentdError):
    """A command exited non-zero and the call asked ``check=True``; ``result`` is its result."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


_BY_STATUS: dict[int, type[AgentdError]] = {
    400: BadRequest, 401: Unauthorized, 404: NotFound, 405: NotSupported, 408: Timeout,
    409: Conflict, 413: LimitExceeded, 415: NotSupported, 429: LimitExceeded,
    500: ServerError, 501: NotSupported, 503: Unavailable, 507: LimitExceeded,
}

_BY_CODE: dict[str, int] = {
    "bad_request": 400, "unauthorized": 401, "request_timeout": 408, "not_found": 404,
    "method_not_allowed": 405, "conflict": 409, "too_large": 413,
    "unsupported_media_type": 415, "insufficient_storage": 507, "over_capacity": 429,
    "internal": 500, "not_supported": 501, "unavailable": 503,
}


def limit_in(message: str) -> str | None:
    """The limit a daemon message names, if any."""
    m = _LIMIT_RE.search(message)
    return m.group(1) if m else None


def error_from_response(status: int | None, body: Any, fallback: str = "") -> AgentdError:
    """The exception for an error answer: body is the parsed JSON (``{"error": {code,
    message}}``) or None; status None means an error line inside a stream."""
    err: Mapping[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        err = body["error"]
    code = err.get("code") if isinstance(err.get("code"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    if status is None and code is not None:
        status_for_class = _BY_CODE.get(code, 500)
    else:
        status_for_class = status or 500
    cls = _BY_STATUS.get(status_for_class,
                         ServerError if status_for_class >= 500 else BadRequest)
    text = message or fallback or f"HTTP {status}"
    limit = limit_in(text) if cls is LimitExceeded else None
    if cls is LimitExceeded and limit is None:
        limit = code
    return cls(text, status=status, code=code, limit=limit)
