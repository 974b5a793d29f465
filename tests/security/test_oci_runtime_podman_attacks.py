"""The security suite's single-shot attacks (test_attacks.SIMPLE: the same sbxprobe calls)
run as the command of a podman container, once with runc and once with build/agentd-runc as
the runtime, the same image and the same podman options. agentd must block at least every
attack runc blocks; the table of both verdicts (and where they differ) is printed, and is
the one in docs/oci-runtime.md."""
import os
import shlex
import socket
import subprocess
import sys
import uuid

import pytest

from .secsuite import AGENTD, first_block_device
from .test_attacks import SIMPLE

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
from oci_engines import (IMAGE, PROBE, RUNC, Podman, make_rootfs_tar,  # noqa: E402
                         private_engine, runtime_path)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the engines run as root here")
SEP = "=== attack "


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    if not os.path.exists(PROBE):
        pytest.skip(f"{PROBE} is not built")
    yield from private_engine(Podman, make_rootfs_tar(str(tmp_path_factory.mktemp("rt-sec"))))


def attack_script(ctx):
    """One shell script running every attack in turn (each bounded), its verdict line and
    exit status after a separator. They run in /tmp (1777 in the image): the attacks that
    plant a file in their cwd (via-symlink's link) need one the container's root may write,
    and under agentd-runc that root is an unprivileged host id in a user namespace, to whom
    the image's root-owned / is read-only (runc's root writes it)."""
    lines = ["cd /tmp"]
    for name, (argv, _) in SIMPLE.items():
        if "{blockdev}" in " ".join(argv) and not ctx["blockdev"]:
            continue
        a = " ".join(shlex.quote(x.format(**ctx)) for x in argv)
        lines.append(f"echo '{SEP}{name}'; timeout 15 /sbxprobe {a} 2>&1; echo \"rc=$?\"")
    return "\n".join(lines)


def verdicts(out):
    """{attack: verdict}: the probe's ALLOWED/BLOCKED/ERROR, or KILLED when a signal (the
    seccomp filter's, say) ended it before it could say."""
    res = {}
    for chunk in out.split(SEP)[1:]:
        name, _, body = chunk.partition("\n")
        v = ""
        rc = 0
        for line in body.splitlines():
            word = line.split(" ", 1)[0]
            if word in ("ALLOWED", "BLOCKED", "ERROR"):
                v = word
            if line.startswith("rc="):
                rc = int(line[3:])
        res[name] = v or ("KILLED" if rc >= 128 else f"NONE(rc={rc})")
    return res


def run_attacks(pm, runtime, ctx):
    r = pm.cli(runtime, "run", "--rm", *pm.run_opts(), IMAGE, "sh", "-c",
               attack_script(ctx), timeout=900)
    assert SEP in r.stdout, f"the container did not run under {runtime}: {r}"
    return verdicts(r.stdout)


def test_agentd_runtime_blocks_what_runc_blocks(podman, tmp_path):
    agentd_runc = runtime_path("agentd-runc")
    hostdir = tmp_path / "host"
    hostdir.mkdir()
    (hostdir / "secret.txt").write_text("host secret\n")
    (hostdir / "writable.txt").write_text("")
    os.chmod(hostdir / "writable.txt", 0o666)
    ctx = {"hostdir": str(hostdir), "token": uuid.uuid4().hex[:8],
           "agentd": os.path.realpath(AGENTD), "blockdev": first_block_device(),
           "state": "/var/lib/agentd"}
    hostname = socket.gethostname()
    try:
        ref = run_attacks(podman, RUNC, ctx)
        ours = run_attacks(podman, agentd_runc, ctx)
    finally:
        if socket.gethostname() != hostname:
            subprocess.run(["hostname", hostname], check=False)
    blocked = ("BLOCKED", "KILLED")
    rows = []
    worse = []
    for name in ref:
        a, b = ref[name], ours.get(name, "MISSING")
        note = ""
        if a in blocked and b not in blocked:
            note = "REGRESSION"
            worse.append(name)
        elif a not in blocked and b in blocked:
            note = "agentd only"
        rows.append(f"| {name} | {a} | {b} | {note} |")
    table = "\n".join(["| attack | runc | agentd-runc | |", "|---|---|---|---|", *rows])
    print("\n" + table)
    # the host is untouched under both: nothing the attacks would plant exists
    for name, (_, host_paths) in SIMPLE.items():
        for p in host_paths:
            p = p.format(**ctx)
            assert not os.path.lexists(p), f"{name} planted {p} on the host"
    assert not worse, f"agentd-runc lets through what runc blocks: {worse}\n{table}"
    only = [r for r in rows if r.endswith("agentd only |")]
    assert len(ref) == len(ours)
    assert ref and ours, "no attack ran"
    print(f"{len(only)} attacks blocked by agentd-runc and not by runc")
