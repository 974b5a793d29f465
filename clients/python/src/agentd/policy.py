"""A builder for a sandbox's policy (docs/policy.md): each method sets a key and returns
the builder; ``to_dict()`` is the ``spec`` of a create."""
from __future__ import annotations

import copy
from typing import Any, Iterable

__all__ = ["Policy"]

MIB = 1024 * 1024


class Policy:
    """``Policy("standard").memory_mib(256).network_allow("pypi.org:443").label(team="x")``.

    Only the keys set are sent; the daemon fills the rest from the profile and checks
    everything (a bad value is a BadRequest naming the key)."""

    def __init__(self, profile: str = "strict", **keys: Any) -> None:
        self._spec: dict[str, Any] = {"profile": profile}
        self._spec.update(copy.deepcopy(keys))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._spec)

    def __repr__(self) -> str:
        return f"Policy({self._spec!r})"

    def _limit(self, key: str, value: int) -> "Policy":
        self._spec.setdefault("limits", {})[key] = int(value)
        return self

    def set(self, key: str, value: Any) -> "Policy":
        """Any key by its dotted name (``limits.cpu_weight``)."""
        d = self._spec
        *parents, last = key.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = copy.deepcopy(value)
        return self

    def workdir(self, path: str) -> "Policy":
        self._spec["workdir"] = path
        return self

    def read_only(self, *paths: str) -> "Policy":
        self._spec.setdefault("allowed_paths_ro", []).extend(paths)
        return self

    def read_write(self, *paths: str) -> "Policy":
        self._spec.setdefault("allowed_paths_rw", []).extend(paths)
        return self

    def bind(self, source: str, target: str, readonly: bool = True) -> "Policy":
        self._spec.setdefault("bind_mounts", []).append(
            {"source": source, "target": target, "readonly": readonly})
        return self

    def network_none(self) -> "Policy":
        self._spec["network"] = {"mode": "none"}
        return self

    def network_allow(self, *entries: str) -> "Policy":
        """Egress through the proxy to these ``host:port`` / ``*.domain:port`` / CIDR
        entries only (mode ``allowlist``)."""
        net = self._spec.setdefault("network", {})
        net["mode"] = "allowlist"
        net.setdefault("allow", []).extend(entries)
        return self

    def network_host(self) -> "Policy":
        self._spec["network"] = {"mode": "host"}
        return self

    def env(self, **variables: str) -> "Policy":
        self._spec.setdefault("environment", {}).update(variables)
        return self

    def label(self, **labels: str) -> "Policy":
        self._spec.setdefault("labels", {}).update(labels)
        return self

    def labels(self, labels: dict[str, str]) -> "Policy":
        self._spec.setdefault("labels", {}).update(labels)
        return self

    def memory_mib(self, mib: int) -> "Policy":
        return self._limit("max_memory_bytes", mib * MIB)

    def memory_bytes(self, n: int) -> "Policy":
        return self._limit("max_memory_bytes", n)

    def cpu_time(self, seconds: float) -> "Policy":
        return self._limit("max_cpu_time_ms", round(seconds * 1000))

    def wall_time(self, seconds: float) -> "Policy":
        return self._limit("max_wall_time_ms", round(seconds * 1000))

    def processes(self, n: int) -> "Policy":
        return self._limit("max_processes", n)

    def open_files(self, n: int) -> "Policy":
        return self._limit("max_open_files", n)

    def output_bytes(self, n: int) -> "Policy":
        return self._limit("max_output_bytes", n)

    def write_bytes(self, n: int) -> "Policy":
        return self._limit("max_write_bytes", n)

    def snapshot_bytes(self, n: int) -> "Policy":
        return self._limit("max_snapshot_bytes", n)

    def process_output_bytes(self, n: int) -> "Policy":
        return self._limit("max_process_output_bytes", n)

    def cpu_quota_pct(self, pct: int) -> "Policy":
        return self._limit("cpu_quota_pct", pct)

    def cpu_weight(self, weight: int) -> "Policy":
        return self._limit("cpu_weight", weight)

    def seccomp(self, profile: str) -> "Policy":
        self._spec["seccomp_profile"] = profile
        return self

    def run_as(self, uid: int, gid: int) -> "Policy":
        self._spec["run_as"] = {"uid": uid, "gid": gid}
        return self


def spec_of(policy: "Policy | dict[str, Any] | None") -> dict[str, Any] | None:
    if policy is None:
        return None
    return policy.to_dict() if isinstance(policy, Policy) else dict(policy)


def label_query(labels: dict[str, str] | None) -> Iterable[tuple[str, str]]:
    return [("label", f"{k}={v}") for k, v in (labels or {}).items()]
