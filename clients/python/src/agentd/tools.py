"""A sandbox as tools for an LLM, in OpenAI's and Anthropic's function-calling formats: a
JSON Schema per tool, and ``call(name, arguments)`` that runs one and returns the text to
give back to the model. Long output is cut in its middle (head and tail kept) with a marker
saying how much was cut."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .client import Sandbox
from .errors import AgentdError
from .models import ExecResult, RunResult

__all__ = ["SandboxTools", "Tool", "truncate"]


def truncate(text: str, limit: int) -> str:
    """text when it has at most limit characters, else its head and its tail around
    ``[... N characters cut ...]`` (the result is at most limit characters plus the
    marker's line)."""
    if limit < 0 or len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - tail:]}"


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[Mapping[str, Any]], str]

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name,
                                                 "description": self.description,
                                                 "parameters": self.parameters}}

    def anthropic(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "input_schema": self.parameters}


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


class SandboxTools:
    """``tools = SandboxTools(sb)``; give the model ``tools.openai()`` or
    ``tools.anthropic()``; for each tool call, reply with ``tools.call(name, args)``.

    Errors (a missing file, a refused path, a limit) are returned as text the model can act
    on, never raised; ``max_output`` bounds each answer (in characters)."""

    def __init__(self, sandbox: Sandbox, *, max_output: int = 8000, prefix: str = "",
                 timeout: float | None = 60.0) -> None:
        self.sandbox = sandbox
        self.max_output = max_output
        self.timeout = timeout
        p = prefix
        self.tools: dict[str, Tool] = {t.name: t for t in [
            Tool(p + "run_command",
                 "Run a shell command (/bin/sh -c) in the sandbox and get its exit code, "
                 "stdout and stderr. Files persist between calls; the sandbox has no network "
                 "unless its policy allows.",
                 _obj({"command": {"type": "string", "description": "the shell command"},
                       "timeout_s": {"type": "number", "description":
                                     "seconds before it is killed (optional)"}},
                      ["command"]), self._run_command),
            Tool(p + "run_code",
                 "Run code in a persistent interpreter in the sandbox (variables and imports "
                 "stay between calls, like a notebook) and get its output, the value of its "
                 "last expression and any error.",
                 _obj({"code": {"type": "string"},
                       "language": {"type": "string", "enum": ["python", "node", "bash"],
                                    "description": "default python"}}, ["code"]),
                 self._run_code),
            Tool(p + "read_file", "Read a text file of the sandbox.",
                 _obj({"path": {"type": "string", "description":
                                "relative to the workdir, or absolute"}}, ["path"]),
                 self._read_file),
            Tool(p + "write_file",
                 "Write a text file in the sandbox (made with its parent directories, "
                 "replaced if it exists).",
                 _obj({"path": {"type": "string"}, "content": {"type": "string"}},
                      ["path", "content"]), self._write_file),
            Tool(p + "list_files", "List a directory of the sandbox.",
                 _obj({"path": {"type": "string", "description": "default: the workdir"}},
                      []), self._list_files),
        ]}

    def openai(self) -> list[dict[str, Any]]:
        return [t.openai() for t in self.tools.values()]

    def anthropic(self) -> list[dict[str, Any]]:
        return [t.anthropic() for t in self.tools.values()]

    def call(self, name: str, arguments: Mapping[str, Any] | str) -> str:
        """Run the tool call (arguments as a dict, or OpenAI's JSON string)."""
        tool = self.tools.get(name)
        if tool is None:
            return f"error: no tool named {name!r} (tools: {', '.join(self.tools)})"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as e:
                return f"error: arguments are not JSON: {e}"
        if not isinstance(arguments, Mapping):
            return "error: arguments must be a JSON object"
        missing = [k for k in tool.parameters["required"] if k not in arguments]
        if missing:
            return f"error: missing argument(s): {', '.join(missing)}"
        try:
            return truncate(tool.run(arguments), self.max_output)
        except AgentdError as e:
            return truncate(f"error: {e.message}", self.max_output)

    def _run_command(self, a: Mapping[str, Any]) -> str:
        t = a.get("timeout_s", self.timeout)
        r = self.sandbox.exec(str(a["command"]), timeout=float(t) if t is not None else None)
        return _exec_text(r, self.max_output)

    def _run_code(self, a: Mapping[str, Any]) -> str:
        r = self.sandbox.run_code(str(a["code"]), str(a.get("language") or "python"),
                                  timeout=self.timeout)
        return _run_text(r, self.max_output)

    def _read_file(self, a: Mapping[str, Any]) -> str:
        return self.sandbox.files.read_text(str(a["path"]))

    def _write_file(self, a: Mapping[str, Any]) -> str:
        data = str(a["content"])
        self.sandbox.files.write(str(a["path"]), data, parents=True)
        return f"wrote {len(data.encode())} bytes to {a['path']}"

    def _list_files(self, a: Mapping[str, Any]) -> str:
        entries = self.sandbox.files.list(str(a.get("path") or "."))
        return "\n".join(f"{e.type}\t{e.size}\t{e.name}" for e in entries) or "(empty)"


def _exec_text(r: ExecResult, limit: int) -> str:
    head = f"exit code {r.exit_code}"
    if r.timed_out:
        head += f" (timed out after {r.duration_ms} ms)"
    if r.limit_hit:
        head += f" (limit hit: {r.limit_hit})"
    half = max(limit // 2 - 100, 0)
    parts = [head]
    if r.stdout:
        parts.append("stdout:\n" + truncate(r.stdout, half))
    if r.stderr:
        parts.append("stderr:\n" + truncate(r.stderr, half))
    return "\n".join(parts)


def _run_text(r: RunResult, limit: int) -> str:
    half = max(limit // 3 - 50, 0)
    parts = [f"status: {r.status}"]
    if r.stdout:
        parts.append("stdout:\n" + truncate(r.stdout, half))
    if r.stderr:
        parts.append("stderr:\n" + truncate(r.stderr, half))
    if r.text is not None:
        parts.append("value: " + truncate(r.text, half))
    if r.images:
        parts.append(f"({len(r.images)} image(s) produced)")
    if r.error is not None:
        parts.append(truncate(f"error: {r.error.name}: {r.error.value}\n{r.error.traceback}",
                              half))
    return "\n".join(parts)
