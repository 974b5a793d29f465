"""Fixtures of the security suite (tests/security): every attack runs from inside a sandbox
with the static helper sbxprobe, once per backend, and is judged against the expectation
table in secsuite.py. Run with:

    AGENTD_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/security

A backend that `agentd backends --json` does not list as available is skipped with the
reason (the container backend until it lands)."""
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

from . import secsuite
from .secsuite import AGENTD, BACKENDS, PROBE

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config):
    config.addinivalue_line("markers", "security: an attack run from inside a sandbox "
                            "(tests/security)")
    for path, what in ((AGENTD, "agentd"), (PROBE, "sbxprobe")):
        if not os.path.exists(path):
            raise pytest.UsageError(f"{path} not built ({what}; run make build)")


def pytest_collection_modifyitems(config, items):
    not_root = pytest.mark.skip(reason="the security suite runs as root (it sets up setuid "
                                "binaries and processes of uid 65534)")
    for item in items:
        if str(item.fspath).startswith(_HERE + os.sep):
            item.add_marker(pytest.mark.security)
            if os.geteuid() != 0:
                item.add_marker(not_root)


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "microvm" and request.param not in secsuite.available_backends():
        pytest.skip(secsuite.MICROVM_NO_SHARING)  # issue 15: vm-host
    if request.param not in secsuite.available_backends():
        pytest.skip(f"backend {request.param} is not available here (agentd backends "
                    f"--json); its expectations stay in the table")
    return request.param


@pytest.fixture
def token():
    return secrets.token_hex(6)


@pytest.fixture
def hostdir():
    """A fresh host directory outside any policy, world-writable (0777) so that only the
    sandbox, not file permissions, keeps a command out of it; secret.txt is a root-owned
    0644 file (readable by anyone on the host), writable.txt is 0666."""
    d = tempfile.mkdtemp(prefix="agentd-sec-", dir="/var/tmp")
    os.chmod(d, 0o777)
    with open(os.path.join(d, "secret.txt"), "w") as f:
        f.write("TOP-SECRET\n")
    os.chmod(os.path.join(d, "secret.txt"), 0o644)
    with open(os.path.join(d, "writable.txt"), "w") as f:
        f.write("ORIGINAL\n")
    os.chmod(os.path.join(d, "writable.txt"), 0o666)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _nobody():
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


@pytest.fixture
def victim(token):
    """A host process running as the sandbox's default uid (65534), so that only the
    sandbox, not the uid, can protect it: (pid, token in its argv)."""
    arg = f"3600.{int(token[:6], 16)}"
    uid = _nobody()
    p = subprocess.Popen(["sleep", arg], user=uid, group=uid, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield p.pid, arg
    p.kill()
    p.wait()


class Listener:
    """A TCP listener on the host's loopback that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._t.join()
        self.sock.close()


@pytest.fixture
def tcp_listener():
    lst = Listener()
    yield lst
    lst.close()
