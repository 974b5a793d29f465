"""What a user sees (docs/cli.md#output, docs/api.md#errors): a sandbox's output reaches a
terminal escaped (no clipboard writes, screen clears or hidden lines), unchanged through a
pipe or with --raw; the output cap keeps the head and the tail of each stream; a streamed
UTF-8 character split across writes stays text; client mistakes are 400s naming the field;
CLI mistakes are one line naming the flag, the argument or the missing interpreter."""
import json
import os
import pathlib
import pty
import select
import socket
import subprocess
import time

import pytest

from conftest import AGENTD, agentd, degraded
from daemon_util import Daemon

# OSC 52 (set the clipboard to "hi"), BEL, clear screen, a lone CR that would overwrite the
# line, C1 CSI as a raw byte and as U+009B, a right-to-left override, DEL; then text.
HOSTILE = (r"\033]52;c;aGk=\a\033[2J" r"safe\rEVIL" r"\233\302\233" r"\342\200\256" r"\177"
           r"|a\tb\r\nok €\n")
SHELL_PRINTF = ["/bin/sh", "-c", f"printf '{HOSTILE}'; printf '{HOSTILE}' >&2"]


def on_pty(argv, env=None, timeout=60):
    """Run argv with stdout and stderr on a pseudo-terminal; what the terminal received."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env or {"PATH": "/usr/bin:/bin"})
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def assert_escaped(out):
    for raw in (b"\x1b", b"\x07", b"\x9b", b"\xc2\x9b", b"\xe2\x80\xae", b"\x7f",
                b"safe\rEVIL"):
        assert raw not in out, (raw, out)
    for shown in (rb"\x1b]52;c;aGk=\x07\x1b[2J", rb"safe\x0dEVIL", rb"\x9b\u009b",
                  rb"\u202e", rb"\x7f|a"):
        assert shown in out, (shown, out)
    # newline, tab, CRLF and UTF-8 text stay as they are (the pty turns \n into \r\n)
    assert "\tb\r\r\nok €\r\n".encode() in out, out


def assert_verbatim(out):
    assert b"\x1b]52;c;aGk=\x07\x1b[2Jsafe\rEVIL\x9b\xc2\x9b\xe2\x80\xae\x7f|a\tb" in out, out


def test_run_escapes_control_characters_on_a_terminal_only():
    rc, out = on_pty([AGENTD, "run", "--", *SHELL_PRINTF])
    assert rc == 0, out
    assert_escaped(out)
    assert out.count(rb"\x1b]52") == 2          # stdout and stderr alike
    rc, out = on_pty([AGENTD, "run", "--raw", "--", *SHELL_PRINTF])
    assert_verbatim(out)
    r = agentd("run", "--", *SHELL_PRINTF)      # a pipe: the bytes, unchanged
    want = b"\x1b]52;c;aGk=\x07\x1b[2Jsafe\rEVIL\x9b\xc2\x9b\xe2\x80\xae\x7f|a\tb\r\nok \xe2\x82\xac\n"
    assert (r.rc, r.stdout, r.stderr) == (0, want, want), r


def test_run_json_on_a_terminal_is_ascii():
    text = r"\033]52;c;aGk=\a\302\233\342\200\256ok"      # valid UTF-8: JSON text
    rc, out = on_pty([AGENTD, "run", "--json", "--", "/usr/bin/printf", text])
    assert rc == 0 and b"\x1b" not in out and b"\xc2\x9b" not in out, out
    assert b"\\u009B\\u202E" in out, out
    o = json.loads(out.replace(b"\r\n", b"\n"))
    assert o["stdout"] == "\x1b]52;c;aGk=\x07\u009b\u202eok", o   # the same string


def test_a_character_split_across_writes_reaches_the_terminal_whole():
    code = ("import os,time\nos.write(1,b'\\xe2')\ntime.sleep(0.3)\nos.write(1,b'\\x82\\xac\\n')\n"
            "os.write(1,b'\\r')\ntime.sleep(0.3)\nos.write(1,b'\\n')\n")
    rc, out = on_pty([AGENTD, "run", "--", "/usr/bin/python3", "-c", code])
    assert rc == 0 and out == "€\r\n\r\r\n".encode(), out


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def test_client_verbs_escape_on_a_terminal(d):
    sid = d.create()
    env = {"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": d.socket}
    for extra in ([], ["--stream"]):
        rc, out = on_pty([AGENTD, "sandbox", "exec", *extra, sid, "--", *SHELL_PRINTF], env)
        assert rc == 0, out
        assert_escaped(out)
        rc, out = on_pty([AGENTD, "sandbox", "exec", "--raw", *extra, sid, "--",
                          *SHELL_PRINTF], env)
        assert_verbatim(out)
    p = d.cli("sandbox", "exec", sid, "--", *SHELL_PRINTF)
    assert p.stdout.startswith(b"\x1b]52;c;aGk=\x07"), p
    # a file of the sandbox's, copied to stdout
    d.exec(sid, ["/bin/sh", "-c", f"printf '{HOSTILE}' > hostile.txt"])
    rc, out = on_pty([AGENTD, "sandbox", "cp", f"{sid}:hostile.txt", "-"], env)
    assert rc == 0, out
    assert_escaped(out)
    rc, out = on_pty([AGENTD, "sandbox", "cp", "--raw", f"{sid}:hostile.txt", "-"], env)
    assert_verbatim(out)
    assert d.cli("sandbox", "cp", f"{sid}:hostile.txt", "-").stdout.startswith(b"\x1b]52")
    sess = subprocess.run([AGENTD, "session", "create", "a1"], env=env, capture_output=True)
    sess = sess.stdout.decode().strip()
    code = f"printf '{HOSTILE}'"
    rc, out = on_pty([AGENTD, "session", "exec", "a1", sess, code, "--language", "sh"], env)
    assert rc == 0, out
    assert_escaped(out)
    rc, out = on_pty([AGENTD, "session", "exec", "--raw", "a1", sess, code, "--language",
                      "sh"], env)
    assert_verbatim(out)
    d.delete(f"/v1/sandboxes/{sid}")


# ------------------------------------------------------------------ the output cap

TRACEBACK = ("import sys\nfor i in range(20000): print('line %05d ' % i + 'x' * 40)\n"
             "print('stdout: the last line')\n"
             "sys.stderr.write('e' * 200000 + '\\nTraceback: the last line\\n')\n")


def test_the_output_cap_keeps_the_head_and_the_tail_of_each_stream():
    r = agentd("run", "--json", "--max-output", "64K", "--", "/usr/bin/python3", "-c", TRACEBACK)
    o = r.json
    assert r.rc == 0 and o["output_truncated"] and o["limit_hit"] == "output", r
    out, err = o["stdout"], o["stderr"]
    assert out.startswith("line 00000 ") and out.endswith("stdout: the last line\n"), out[-200:]
    assert err.startswith("eee") and err.endswith("Traceback: the last line\n"), err[-200:]
    for s, total in ((out, 20000 * 52 + 22), (err, 200000 + 26)):
        head, marker, tail = s.partition("\n[... ")
        omitted = int(marker and tail.split(" bytes omitted ...]\n")[0])
        kept = len(head) + len(tail.split(" bytes omitted ...]\n", 1)[1])
        assert kept <= 65536 and kept > 65536 - 8, kept
        assert kept + omitted == total, (kept, omitted, total)
    # under the cap nothing is cut and nothing is marked
    r = agentd("run", "--json", "--max-output", "64K", "--", "/bin/echo", "short")
    assert r.json["stdout"] == "short\n" and not r.json["output_truncated"], r


def test_the_cut_never_splits_a_character():
    code = "import sys\nsys.stdout.write('€' * 100000 + 'end\\n')\n"
    r = agentd("run", "--json", "--max-output", "1001", "--", "/usr/bin/python3", "-c", code)
    o = r.json
    assert "stdout_encoding" not in o and o["output_truncated"], r     # still text
    assert o["stdout"].startswith("€€") and o["stdout"].endswith("€end\n"), o["stdout"]


def test_a_live_reader_gets_the_head_then_the_tail(d):
    sid = d.create(spec={"limits": {"max_output_bytes": 1000}})
    code = "print('a' * 5000)\nprint('THE END')"
    r = d.exec(sid, ["/usr/bin/python3", "-c", code], stream=True)
    lines = [json.loads(l) for l in r.body.splitlines()]
    data = "".join(l["data"] for l in lines if l.get("stream") == "stdout")
    assert data.startswith("a" * 1000) and data.endswith("aaa\nTHE END\n"), data
    assert "bytes omitted ...]" in data and lines[-1]["exit"]["output_truncated"], lines[-1]
    d.delete(f"/v1/sandboxes/{sid}")


def test_a_streamed_character_split_across_writes_stays_text(d):
    sid = d.create()
    code = ("import os,time\nos.write(1,b'\\xe2')\ntime.sleep(0.5)\nos.write(1,b'\\x82\\xac')\n"
            "time.sleep(0.5)\nos.write(1,b'\\xff')\ntime.sleep(0.5)\nos.write(1,b'\\xe2\\x82')\n")
    r = d.exec(sid, ["/usr/bin/python3", "-c", code], stream=True)
    chunks = [json.loads(l) for l in r.body.splitlines() if b'"stream"' in l]
    assert chunks[0] == {"stream": "stdout", "data": "€"}, chunks
    # truly invalid bytes, and a character the command never finished, are base64
    assert all(c.get("encoding") == "base64" for c in chunks[1:]) and len(chunks) >= 2, chunks
    d.delete(f"/v1/sandboxes/{sid}")


# ------------------------------------------------------------------ API statuses

def test_client_mistakes_are_400_naming_the_field(d):
    sid = d.create()
    r = d.exec(sid, ["/bin/true"], workdir="/nonexistent")
    assert r.status == 400 and "workdir /nonexistent" in r.error["message"], r
    r = d.exec(sid, ["/bin/true"], workdir="/etc/passwd")
    assert r.status == 400 and "workdir /etc/passwd: Not a directory" in r.error["message"], r
    assert d.exec(sid, ["/bin/true"]).json["exit_code"] == 0   # the sandbox is fine
    for spec, field in [({"allowed_paths_ro": ["/nonexistent/ro"]}, "allowed_paths_ro[0]"),
                        ({"allowed_paths_rw": ["/nonexistent/rw"]}, "allowed_paths_rw[0]"),
                        ({"bind_mounts": [{"source": "/nonexistent/b", "target": "/b"}]},
                         "bind_mounts[0].source"),
                        ({"seccomp_profile": "/nonexistent/p.json"}, "seccomp_profile")]:
        r = d.post("/v1/sandboxes", {"backend": "container", "spec": spec})
        assert r.status == 400 and field in r.error["message"], r
        assert "No such file or directory" in r.error["message"], r
    # a spec workdir that is a file of the sandbox's own root (a generated one, a copied one)
    for wd in ("/etc/passwd", "/etc/hostname/x", "/etc/services"):
        r = d.post("/v1/sandboxes", {"backend": "container", "spec": {"workdir": wd}})
        assert r.status == 400 and f"workdir: {wd}: " in r.error["message"], r
        assert "is a file in the sandbox, not a directory" in r.error["message"], r
    d.delete(f"/v1/sandboxes/{sid}")


def test_a_second_delete_is_404(d):
    sid = d.create()
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    r = d.delete(f"/v1/sandboxes/{sid}")
    assert r.status == 404 and "destroyed" in r.error["message"], r
    assert d.exec(sid, ["/bin/true"]).status == 409        # other verbs: still a conflict
    r = d.post("/v1/agents/a2/sessions", {})
    sess = r.json["session_id"]
    assert d.delete(f"/v1/agents/a2/sessions/{sess}").status == 200
    assert d.delete(f"/v1/agents/a2/sessions/{sess}").status == 404


def test_no_backend_limit_is_null(d):
    for b in d.get("/v1/backends").json["backends"]:
        if b["available"]:
            assert b["capabilities"]["max_concurrent_sandboxes"] is None, b


def test_backends_say_what_they_enforce(d):
    """The daemon's backend objects list the policy items enforced here and why not the
    others, as `agentd probe --json` does."""
    bs = {b["name"]: b for b in d.get("/v1/backends").json["backends"]}
    hd = bs["host-direct"]
    assert "filesystem" in hd["cannot_enforce"] and hd["cannot_enforce"]["filesystem"], hd
    assert "filesystem" not in hd["enforces"], hd
    ctr = bs["container"]
    if ctr["available"]:
        assert {"filesystem", "network_none", "seccomp"} <= set(ctr["enforces"]), ctr
        assert not set(ctr["enforces"]) & set(ctr["cannot_enforce"]), ctr


def test_a_wrong_bearer_token_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dm = Daemon("--listen", f"127.0.0.1:{port}")
    tf = os.path.join(dm.dir, "token")
    with open(tf, "w") as f:
        f.write("t0ken-" + os.urandom(12).hex() + "\n")
    dm.extra += ["--token-file", tf]
    dm.start()
    try:
        import http.client
        for hdr, msg in [({}, "a bearer token is required"),
                         ({"Authorization": "Bearer wrong"}, "invalid token"),
                         ({"Authorization": "Basic eDp5"}, "invalid token")]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/v1/health", headers=hdr)
            r = c.getresponse()
            body = json.loads(r.read())
            assert r.status == 401 and body["error"]["message"] == msg, (hdr, body)
            c.close()
    finally:
        dm.cleanup()


# ------------------------------------------------------------------ CLI messages

def one_line(p, *want):
    """p (a CompletedProcess) failed as agentd's own error, in one line saying all of want."""
    err = p.stderr.decode()
    assert p.returncode == 125, p
    assert err.count("\n") == 1 and "usage:" not in err, err
    for w in want:
        assert w in err, (w, err)


def test_client_argument_errors_are_one_line(d):
    one_line(d.cli("sandbox", "exec", "--", "true"), "sandbox ID is missing")
    one_line(d.cli("sandbox", "exec", "0" * 32), "no command given")
    one_line(d.cli("sandbox", "exec", "--bogus", "x"), "unknown option --bogus",
             "agentd sandbox --help")
    one_line(d.cli("sandbox", "exec", "--timeout"), "a value is missing after --timeout")
    one_line(d.cli("sandbox", "frobnicate"), "unknown command 'frobnicate'")
    one_line(d.cli("sandbox", "rm"), "sandbox ID is missing")
    one_line(d.cli("session", "exec", "a", "b"), "CODE is missing", "agentd session --help")
    one_line(d.cli("session", "exec", "a"), "SESSION is missing")
    one_line(d.cli("session", "frobnicate", "a"), "unknown command 'frobnicate'")
    one_line(d.cli("session", "rm", "a", "b", "c"), "unexpected argument 'c'")
    one_line(d.cli("session", "exec", "--bogus", "a", "b", "c"), "unknown option --bogus")


@pytest.mark.parametrize("flags,msg", [
    (["--memory", "10"], "--memory: 10 bytes is below 1M"),
    (["--memory", "1000K"], "--memory: 1000K is below 1M"),
    (["--timeout", "0s"], "--timeout: 0ms is below 1ms"),
    (["--cpu-time", "0"], "--cpu-time: 0ms is below 1ms"),
    (["--pids", "0"], "--pids: 0 is below 1"),
    (["--pids", "2000000"], "--pids: 2000000 is above 1048576"),
    (["--max-output", "-1"], "--max-output: invalid size"),
    (["--workdir", "rel"], "--workdir: workdir: expected absolute path"),
    (["--ro", "rel"], "--ro: allowed_paths_ro[0]: expected absolute path"),
    (["--env", "LD_PRELOAD=x"], "--env: environment.LD_PRELOAD"),
    (["--seccomp", "bad"], "--seccomp: seccomp_profile"),
    (["--net", "allow:bad"], "--net: network.allow[0]"),
    (["--bogus"], "run: unknown option --bogus (see agentd run --help)"),
])
def test_flag_errors_name_the_flag(flags, msg):
    one_line(agentd("run", *flags, "--", "/bin/true").proc, "agentd: " + msg)


def test_a_missing_flag_value_is_named():
    one_line(agentd("run", "--backend").proc, "agentd: run: a value is missing after --backend")


def test_a_policy_file_error_is_not_blamed_on_a_flag(tmp_path):
    pol = tmp_path / "p.json"
    pol.write_text('{"allowed_paths_ro": ["/usr"], "environment": {"A": "1"}}')
    r = agentd("run", "--policy", str(pol), "--ro", "rel", "--", "/bin/true")
    assert r.rc == 125 and b"--ro: allowed_paths_ro[1]" in r.stderr, r


def test_a_host_only_command_hints_ro(hostdir):
    tmp_path = pathlib.Path(hostdir)
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    r = agentd("run", "--backend", "container", "--", str(script))
    assert r.rc == 127, r
    assert (f"agentd: {script}: not found in the sandbox, but it exists on the host: make it "
            f"visible with --ro {script}").encode() in r.stderr, r
    r = agentd("run", "--backend", "container", "--ro", str(tmp_path), "--", str(script))
    assert (r.rc, r.stdout) == (0, b"ran\n"), r
    # a symlink is not followed on the host: it may be the sandbox's
    link = tmp_path / "link"
    link.symlink_to(script)
    r = agentd("run", "--backend", "container", "--", str(link))
    assert r.rc == 127 and b"exists on the host" not in r.stderr, r
    r = agentd("run", "--backend", "container", "--", "/nonexistent/cmd")
    assert r.rc == 127 and r.stderr == b"agentd: /nonexistent/cmd: No such file or directory\n"


@pytest.mark.parametrize("backend", ["container", "linux-native", "host-direct"])
def test_a_missing_interpreter_is_named(hostdir, backend):
    tmp_path = pathlib.Path(hostdir)
    script = tmp_path / "x.sh"
    script.write_text("#!/nonexistent/interp -x\necho ran\n")
    script.chmod(0o755)
    r = agentd("run", "--backend", backend, *degraded(backend), "--ro", str(tmp_path), "--",
               str(script))
    assert r.rc == 127, r
    # (with host-direct's warnings about what it does not enforce)
    assert r.stderr.splitlines(keepends=True)[0] == (f"agentd: {script}: interpreter /nonexistent/interp (its #! line): "
                        "No such file or directory\n").encode(), r
    # found through PATH too
    r = agentd("run", "--backend", backend, *degraded(backend), "--ro", str(tmp_path),
               "--env", f"PATH={tmp_path}", "--", "x.sh")
    assert r.rc == 127 and b"interpreter /nonexistent/interp" in r.stderr, r


@pytest.mark.parametrize("args,msg", [
    (["serve", "--bogus"], "serve: unknown option --bogus (see agentd serve --help)"),
    (["serve", "--socket"], "serve: a value is missing after --socket"),
    (["backends", "--x"], "backends: unknown option --x (see agentd backends --help)"),
    (["probe", "--backend"], "probe: a value is missing after --backend"),
])
def test_every_verb_answers_a_bad_option_in_one_line(args, msg):
    one_line(agentd(*args).proc, "agentd: " + msg)
