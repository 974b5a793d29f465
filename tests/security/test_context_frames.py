"""Code contexts (docs/contexts.md#security) attacked from inside: a cell that writes forged,
oversized or malformed frames onto its runner's protocol fd, or floods its output, corrupts
only its own context. The daemon kills that context with a clear reason, its memory stays
flat, and the sandbox's other contexts keep working."""
import json
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from daemon_util import Daemon, wait_until, context_create as context, context_run as run  # noqa: E402

# The runner's protocol fd and the running cell's id, as a hostile cell finds them.
PROTO = "import os, sys\ng = sys._getframe(1).f_globals\nfd, cid = g['proto_out'], g['cell_id']\n"


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


@pytest.fixture(scope="module")
def sb(d):
    r = d.post("/v1/sandboxes", {"backend": "container",
                                 "spec": {"limits": {"max_output_bytes": 1 << 20}}})
    if r.status != 201:
        pytest.skip(f"no container sandbox here: {r}")
    yield r.json["id"]
    d.delete(f"/v1/sandboxes/{r.json['id']}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.fixture
def bystander(d, sb):
    """Another context of the same sandbox, holding state that must survive."""
    cid = context(d, sb)
    run(d, sb, cid, "kept = 'still here'")
    yield cid
    assert run(d, sb, cid, "kept")["result"]["text/plain"] == "'still here'"
    assert d.get("/v1/health").status == 200
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.parametrize("forgery,reason", [
    ("os.write(fd, b'done %d 15\\n{\"status\":\"ok\"}' % (cid + 7))", "during cell"),
    ("os.write(fd, b'x' * 100)", "frame header over"),
    ("os.write(fd, b'done %d 4294967295\\n' % cid)", "done frame of 4294967295 bytes"),
    ("os.write(fd, b'done %d 5\\n{\"a\":' % cid)", "done frame"),
    ("os.write(fd, b'error %d 2\\n{}' % cid)", "error frame"),
    ("os.write(fd, b'result %d 13\\n{\"<x>\": \"1\"}' % cid)", "result frame"),
    ("os.write(fd, b'hello 0 2\\n{}')", "hello frame"),
    ("os.write(fd, b'out %d -1\\n' % cid)", "malformed out frame header"),
])
def test_forged_frames_end_only_their_context(d, sb, bystander, forgery, reason):
    cid = context(d, sb)
    run(d, sb, cid, "x = 1")
    out = run(d, sb, cid, PROTO + forgery + "\nimport time; time.sleep(1)", timeout_ms=20000)
    assert out["status"] == "killed" and out["context_alive"] is False, out
    assert "broke the protocol" in out["error"]["value"] and reason in out["error"]["value"], out
    r = d.post(f"/v1/sandboxes/{sb}/contexts/{cid}/run", {"code": "x"})
    assert r.status == 409 and "gone" in r.error["message"], r
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_a_gigabyte_of_output_leaves_the_daemon_flat(d, sb, bystander):
    cid = context(d, sb)
    before = rss_kib(d.proc.pid)
    out = run(d, sb, cid, "import sys\nb = 'x' * (1 << 20)\nfor i in range(1024):\n"
                          "    sys.stdout.write(b)\n'end'", timeout_ms=120000)
    grown = rss_kib(d.proc.pid) - before
    assert out["status"] == "ok" and out["output_truncated"] is True, {
        k: v for k, v in out.items() if k != "stdout"}
    assert len(out["stdout"]) <= 1 << 20 and out["result"]["text/plain"] == "'end'"
    assert grown < 48 * 1024, f"the daemon grew by {grown} KiB"
    assert run(d, sb, cid, "1 + 1")["result"]["text/plain"] == "2"   # the context lives
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_a_forged_huge_frame_is_never_kept(d, sb, bystander):
    """An out frame claiming 4 GiB whose bytes then keep coming: skipped, never buffered;
    the cell's own done frame is swallowed by it, so the context ends at the timeout."""
    cid = context(d, sb)
    before = rss_kib(d.proc.pid)
    out = run(d, sb, cid, PROTO + "os.write(fd, b'out %d 4294967295\\n' % cid)\n"
                                  "b = b'y' * (1 << 20)\nfor i in range(256):\n"
                                  "    os.write(fd, b)\n", timeout_ms=5000)
    grown = rss_kib(d.proc.pid) - before
    assert out["status"] == "killed" and "SIGINT" in out["error"]["value"], out
    assert grown < 48 * 1024, f"the daemon grew by {grown} KiB"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_the_interpreter_exiting_is_a_clear_error(d, sb, bystander):
    cid = context(d, sb)
    out = run(d, sb, cid, "import os\nos._exit(3)")
    assert out["status"] == "killed" and "exited (status 3)" in out["error"]["value"], out
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_runner_closing_its_stderr_does_not_spin_the_daemon(d, sb, bystander):
    """The runner's stderr at EOF while a cell runs on: the daemon stops watching it
    instead of polling a hung-up pipe in a loop."""
    cid = context(d, sb)
    before = cpu_seconds(d.proc.pid)
    out = run(d, sb, cid, "import os, sys, time\nos.close(sys._getframe(1).f_globals['diag'])\n"
                          "time.sleep(3)\n'slept'")
    used = cpu_seconds(d.proc.pid) - before
    assert out["result"]["text/plain"] == "'slept'", out
    assert used < 1.0, f"the daemon used {used:.2f} s of CPU during a 3 s sleep"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.parametrize("flood", [
    # 200 error frames of 1 MiB: each one was an event of its own
    "e = b'{\"name\":\"E\",\"traceback\":\"\",\"value\":\"' + b'v' * ((1 << 20) - 64) + b'\"}'\n"
    "for i in range(200):\n    os.write(fd, b'error %d %d\\n' % (cid, len(e)) + e)\n",
    # 4 M empty out frames (36 MB written): each one was a line of its own
    "b = b'out %d 0\\n' % cid * 65536\nfor i in range(64):\n    os.write(fd, b)\n",
])
def test_a_streamed_cell_flooding_events_leaves_the_daemon_flat(d, sb, bystander, flood):
    """A cell streamed to a reader that is slower than it (here: one that reads nothing
    until the cell ended) repeats frames that each keep nothing: an error frame replaces
    the last one, an empty out frame adds nothing. Their events are bounded like the
    output and the results, not queued one per frame in the daemon."""
    cid = context(d, sb)
    before = rss_kib(d.proc.pid)
    body = json.dumps({"code": PROTO + flood + "'end'", "stream": True,
                       "timeout_ms": 120000}).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(d.socket)
    s.sendall(b"POST /v1/sandboxes/%s/contexts/%s/run HTTP/1.1\r\nHost: agentd\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (sb.encode(), cid.encode(), len(body)) + body)
    try:
        def cell_over():
            c = d.get(f"/v1/sandboxes/{sb}/contexts/{cid}").json
            return c["cells"] == 1 and c["state"] != "running" and c
        assert wait_until(cell_over, timeout=150, step=0.5)["state"] == "ready"
        grown = rss_kib(d.proc.pid) - before
    finally:
        s.close()
    assert grown < 48 * 1024, f"the daemon grew by {grown} KiB"
    assert run(d, sb, cid, "1 + 1")["result"]["text/plain"] == "2"   # the context lives
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.parametrize("forgery", [
    # an unknown kind: a quote, an escape sequence (OSC 52, the clipboard) in the header
    "k = b'x\"\\x1b]52;c;Zm9yZ2Vk\\x07 admin=1'\nos.write(fd, k + b' %d 2\\n{}' % cid)",
    # a result's MIME type: a newline and a whole forged log line in a JSON key
    "e = b'{\"a\\\\n' + b'ts=2020-01-01T00:00:00.000Z level=info msg=\\\\\"forged\\\\\"\": \"1\"}'\n"
    "os.write(fd, b'result %d %d\\n' % (cid, len(e)) + e)",
])
def test_a_forged_frame_cannot_write_the_daemons_log(d, sb, bystander, forgery):
    """The reason a context was killed quotes the offending bytes, and goes to the daemon's
    log and to terminals: it shows them as printable ASCII, never a line, field or escape
    sequence of the sandbox's making."""
    cid = context(d, sb)
    out = run(d, sb, cid, PROTO + forgery + "\nimport time; time.sleep(1)", timeout_ms=20000)
    assert out["status"] == "killed" and "broke the protocol" in out["error"]["value"], out
    reason = out["error"]["value"]
    assert all(32 <= ord(ch) < 127 and ch not in '"\\' for ch in reason.split(": ", 1)[1]), reason
    bad = [line for line in d.read_log().splitlines()
           if "\x1b" in line or line.startswith("ts=2020") or "admin=1" in line]
    assert not bad, bad
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")
