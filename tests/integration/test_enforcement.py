"""Fail closed (docs/policy.md#enforcement): a policy item the chosen backend cannot enforce
is never dropped silently. auto skips such a backend; naming one is an error (exit 125,
HTTP 400) that says what and why; --allow-degraded / "allow_degraded": true runs anyway and
lists what was not enforced. An exec timeout above the sandbox's wall limit is refused.

The unprivileged cases run agentd as uid 65534 from a cgroup that user cannot write (no
delegation), the state of a normal user on a host without systemd's Delegate=yes."""
import json
import os

import pytest

from conftest import agentd
from test_daemon import d  # noqa: F401  (the daemon fixture)
from test_unprivileged import NOBODY, run_as_nobody, userdir  # noqa: F401  (the fixture)

BIG = "x = bytearray(100 * 1024 * 1024); print(len(x))"


def as_nobody(userdir, *args):
    """agentd ARGS as uid 65534, left in the caller's (root's) cgroup: nothing delegated."""
    return run_as_nobody(userdir, None, *args)


@pytest.fixture
def undelegated(userdir):  # noqa: F811
    """userdir, after checking that uid 65534 really has no cgroup to write here."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run agentd as another user")
    r = as_nobody(userdir, "probe", "--json")
    assert r.returncode == 0, r
    probe = json.loads(r.stdout)
    if probe["platform"]["cgroup_writable"]:
        pytest.skip("uid 65534 can write a cgroup here: nothing to fail closed about")
    return userdir


def test_auto_does_not_pick_a_backend_that_drops_the_memory_limit(undelegated):
    r = as_nobody(undelegated, "run", "--memory", "32M", "--json", "--",
                  "/usr/bin/python3", "-c", BIG)
    assert r.returncode == 125, r
    err = r.stderr.decode()
    assert "auto: no backend enforces this policy here" in err, err
    assert "memory limit 32M" in err and "no writable cgroup" in err, err
    assert "docs/backends.md#unprivileged-use" in err and "--allow-degraded" in err, err
    assert r.stdout == b"", r                            # nothing ran


def test_naming_a_backend_that_cannot_enforce_memory_is_125(undelegated):
    r = as_nobody(undelegated, "run", "--backend", "linux-native", "--memory", "32M", "--json",
                  "--", "/usr/bin/python3", "-c", BIG)
    assert r.returncode == 125, r
    err = r.stderr.decode()
    assert "backend linux-native cannot enforce memory limit 32M" in err, err
    assert "process limit 64" in err, err                # the profile's default is policy too
    assert "--allow-degraded" in err, err
    assert r.stdout == b"", r


def test_allow_degraded_runs_and_lists_what_is_not_enforced(undelegated):
    r = as_nobody(undelegated, "run", "--allow-degraded", "--memory", "32M", "--json", "--",
                  "/usr/bin/python3", "-c", BIG)
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["backend"] == "linux-native", out        # the best of what is left
    assert out["stdout"] == str(100 * 1024 * 1024) + "\n", out
    items = {u.split(":", 1)[0] for u in out["unenforced"]}
    assert {"memory", "pids"} <= items, out
    assert "filesystem" not in items and "network_none" not in items, out
    err = r.stderr.decode()
    assert "warning: not enforced (--allow-degraded): memory: no writable cgroup" in err, err


def test_run_as_another_user_needs_root(undelegated):
    r = as_nobody(undelegated, "run", "--backend", "linux-native", "--allow-degraded",
                  "--user", "1234", "--json", "--", "/usr/bin/id", "-u")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["stdout"] == f"{NOBODY}\n", out          # not 1234: and it says so
    assert any(u.startswith("run_as: agentd is not root") for u in out["unenforced"]), out
    r = as_nobody(undelegated, "run", "--backend", "linux-native", "--user", "1234", "--",
                  "/usr/bin/id", "-u")
    assert r.returncode == 125 and b"run_as 1234:1234" in r.stderr, r


def test_probe_lists_per_backend_what_it_enforces(undelegated):
    r = as_nobody(undelegated, "probe", "--json")
    backends = {b["name"]: b for b in json.loads(r.stdout)["backends"]}
    ln = backends["linux-native"]
    assert "filesystem" in ln["enforces"] and "memory" not in ln["enforces"], ln
    assert ln["cannot_enforce"]["memory"].startswith("no writable cgroup"), ln
    assert json.loads(r.stdout)["auto"] is None
    r = agentd("probe", "--json")                         # root, everything delegated
    probe = json.loads(r.stdout)
    backends = {b["name"]: b for b in probe["backends"]}
    hd = backends["host-direct"]
    assert {"filesystem", "network_none", "seccomp"} <= set(hd["cannot_enforce"]), hd
    assert "memory" in hd["enforces"], hd
    # issue 13: an image root needs a mount namespace; the container gives one (as root)
    assert set(backends["linux-native"]["cannot_enforce"]) == {"bind_mounts",
                                                               "network_allowlist", "image"}
    assert "no mount namespace" in backends["linux-native"]["cannot_enforce"]["image"]
    if backends["container"]["available"]:
        assert backends["container"]["cannot_enforce"] == {}, backends["container"]
        assert probe["auto"] == "container"


def test_host_direct_is_refused_unless_degraded():
    r = agentd("run", "--backend", "host-direct", "--", "/bin/true")
    assert r.rc == 125, r
    assert b'backend host-direct cannot enforce filesystem' in r.stderr, r
    assert b'network "none": host-direct shares the host\'s network' in r.stderr, r
    r = agentd("run", "--backend", "host-direct", "--allow-degraded", "--json", "--", "/bin/true")
    assert r.rc == 0, r
    items = [u.split(":", 1)[0] for u in r.json["unenforced"]]
    assert items == ["filesystem", "network_none", "seccomp"], r.json
    # what it can enforce is not listed; a policy that asks for less lists less
    r = agentd("run", "--backend", "host-direct", "--allow-degraded", "--json",
               "--seccomp", "none", "--", "/bin/true")
    assert [u.split(":", 1)[0] for u in r.json["unenforced"]] == ["filesystem", "network_none"]
    r = agentd("run", "--backend", "linux-native", "--json", "--", "/bin/true")
    assert r.rc == 0 and r.json["unenforced"] == [], r


def test_daemon_refuses_what_a_named_backend_cannot_enforce(d):
    r = d.post("/v1/sandboxes", {"backend": "host-direct"})
    assert r.status == 400, r
    msg = r.json["error"]["message"]
    assert "backend host-direct cannot enforce filesystem" in msg, msg
    assert '"allow_degraded": true' in msg, msg
    r = d.post("/v1/sandboxes", {"backend": "host-direct", "allow_degraded": True})
    assert r.status == 201, r
    sid = r.json["id"]
    items = [u.split(":", 1)[0] for u in r.json["unenforced"]]
    assert items == ["filesystem", "network_none", "seccomp"], r.json
    e = d.exec(sid, ["/bin/true"])
    assert e.status == 200 and e.json["unenforced"] == r.json["unenforced"], e
    assert d.get(f"/v1/sandboxes/{sid}").json["unenforced"] == r.json["unenforced"]
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    r = d.post("/v1/sandboxes", {"backend": "linux-native"})
    assert r.status == 201 and r.json["unenforced"] == [], r
    d.delete(f"/v1/sandboxes/{r.json['id']}")
    r = d.post("/v1/sandboxes", {"allow_degraded": "yes"})
    assert r.status == 400 and "allow_degraded" in r.json["error"]["message"], r
    # sessions take the same opt-in
    r = d.post("/v1/agents/a1/sessions", {"backend": "host-direct"})
    assert r.status == 400, r
    r = d.post("/v1/agents/a1/sessions", {"backend": "host-direct", "allow_degraded": True})
    assert r.status == 201, r
    assert [u.split(":", 1)[0] for u in r.json["unenforced"]] == items, r
    d.delete(f"/v1/agents/a1/sessions/{r.json['session_id']}")


def test_daemon_auto_picks_per_spec(d):
    """auto in the daemon is chosen per policy: a remapped bind mount needs the container."""
    r = d.post("/v1/sandboxes", {"backend": "auto", "spec": {
        "bind_mounts": [{"source": "/usr/bin", "target": "/opt/tools"}]}})
    if not d.get("/v1/backends/container").json["available"]:
        assert r.status == 400 and "bind_mounts" in r.json["error"]["message"], r
        return
    assert r.status == 201 and r.json["backend"] == "container", r
    assert r.json["unenforced"] == []
    d.delete(f"/v1/sandboxes/{r.json['id']}")


def test_cli_sandbox_create_refuses_or_warns(d):
    r = d.cli("sandbox", "create", "--backend", "host-direct")
    assert r.returncode == 125, r
    assert b"cannot enforce filesystem" in r.stderr and b"HTTP 400" in r.stderr, r
    r = d.cli("sandbox", "create", "--backend", "host-direct", "--allow-degraded")
    assert r.returncode == 0, r
    assert b"warning: not enforced (--allow-degraded): network_none:" in r.stderr, r
    d.cli("sandbox", "rm", r.stdout.decode().strip())
    r = d.cli("session", "create", "a2", "--backend", "host-direct")
    assert r.returncode == 125 and b"cannot enforce filesystem" in r.stderr, r
    r = d.cli("session", "create", "a2", "--backend", "host-direct", "--allow-degraded")
    assert r.returncode == 0, r
    assert b"warning: not enforced (--allow-degraded): filesystem:" in r.stderr, r
    d.cli("session", "rm", "a2", r.stdout.decode().strip())


def test_exec_timeout_above_the_wall_limit_is_refused(d):
    r = d.post("/v1/sandboxes", {"backend": "linux-native",
                                 "spec": {"limits": {"max_wall_time_ms": 5000}}})
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        for stream in (False, True):
            e = d.exec(sid, ["/bin/true"], timeout_ms=10000, stream=stream)
            assert e.status == 400, e
            msg = e.json["error"]["message"]
            assert ("timeout_ms 10000 is above the sandbox's wall-time limit "
                    "(limits.max_wall_time_ms = 5000)") in msg, msg
        e = d.exec(sid, ["/bin/true"], timeout_ms=5000)
        assert e.status == 200 and e.json["exit_code"] == 0, e
        r = d.cli("sandbox", "exec", "--timeout", "10s", sid, "--", "/bin/true")
        assert r.returncode == 125, r
        assert b"timeout_ms 10000 is above" in r.stderr and b"HTTP 400" in r.stderr, r
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
