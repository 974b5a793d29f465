"""issue 13: oci-engine. The security table's engine-socket row: from inside a sandbox,
connect to the host's container engine API socket (docker.sock mounted in is the classic
escape: whoever reaches it runs containers as root). The host here has no engine socket, so
the test makes one and names it with DOCKER_HOST, as a host running dockerd would."""
import json
import os
import shutil
import socket
import tempfile
import threading

import pytest

from .secsuite import PROBE, agentd


@pytest.fixture
def engine_socket():
    d = tempfile.mkdtemp(prefix="agentd-enginesock-", dir="/var/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "docker.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)

    def serve():
        # accept and hang up: a docker CLI that asks it (the oci probe) fails at once
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield s, path
    try:
        s.shutdown(socket.SHUT_RDWR)  # wakes the accept
    except OSError:
        pass
    s.close()
    shutil.rmtree(d, ignore_errors=True)


def table(path):
    r = agentd("probe", "--security", "--json", timeout=600,
               env={"AGENTD_SBXPROBE": PROBE, "DOCKER_HOST": "unix://" + path})
    assert r.rc == 0, r
    return json.loads(r.stdout)


def test_engine_socket_is_out_of_every_sandboxs_reach(engine_socket):
    """root:root 0660, as docker.sock is (root:docker): the row is judged for every backend
    and each one keeps the sandbox away from it (uid 65534; the namespaced backends do not
    even see it). With the socket open to every uid (0666) the process backends reach it:
    the attack does connect when nothing stops it, so blocked means blocked."""
    _, path = engine_socket
    os.chmod(path, 0o660)
    t = table(path)
    assert t["security"], t
    for backend, col in t["security"].items():
        assert col.get("engine-socket") == "blocked", \
            (backend, col.get("engine-socket"), t["details"][backend].get("engine-socket"))
    os.chmod(path, 0o666)
    t = table(path)
    # no filesystem wall covers connect(2) to a named socket on the process backends
    # (Landlock has no right for it): a socket open to every uid is theirs to reach
    for backend in ("host-direct", "linux-native"):
        if backend in t["security"]:
            assert t["security"][backend]["engine-socket"] == "allowed", \
                (backend, t["details"][backend].get("engine-socket"))
    for backend in ("container", "oci"):
        if backend in t["security"]:
            assert t["security"][backend]["engine-socket"] == "blocked", \
                (backend, t["details"][backend].get("engine-socket"))
