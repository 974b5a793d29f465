"""Stateful code contexts (docs/contexts.md) against a real `agentd serve`: python, node and
shell interpreters that keep their state between cells, rich results, timeouts that
interrupt first, streaming, sessions running in contexts, and bad input."""
import base64
import json
import os
import shutil

import pytest

from daemon_util import Daemon, UnixHTTPConnection, context_create as context, \
    context_run as run, pids_with

NODE = shutil.which("node") is not None


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


@pytest.fixture(scope="module")
def sb(d):
    sid = d.create(spec={"limits": {"max_wall_time_ms": 60000}})
    yield sid
    d.delete(f"/v1/sandboxes/{sid}")


def test_a_python_context_keeps_its_variables(d, sb):
    cid = context(d, sb)
    assert run(d, sb, cid, "x = 41")["status"] == "ok"
    out = run(d, sb, cid, "print(x + 1)")
    assert out["stdout"] == "42\n" and out["error"] is None, out
    r = d.get(f"/v1/sandboxes/{sb}/contexts/{cid}")
    assert r.json["language"] == "python" and r.json["cells"] == 2 and r.json["state"] == "ready"
    assert any(c["id"] == cid for c in d.get(f"/v1/sandboxes/{sb}/contexts").json["contexts"])
    assert d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}").status == 200
    assert d.get(f"/v1/sandboxes/{sb}/contexts/{cid}").status == 404


def test_the_value_of_a_final_expression_and_an_exception(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "y = [1, 'a']\ny")
    assert out["result"] == {"text/plain": "[1, 'a']"}, out
    out = run(d, sb, cid, "def f():\n    return 1 / 0\nf()")
    assert out["status"] == "error" and out["result"] is None
    e = out["error"]
    assert e["name"] == "ZeroDivisionError" and e["value"] == "division by zero", e
    assert "line 2, in f" in e["traceback"] and "<cell" in e["traceback"], e
    assert "agentd" not in e["traceback"] and "<string>" not in e["traceback"], e
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_output_of_a_subprocess_is_captured(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "import subprocess, os\nsubprocess.run(['sh', '-c', 'echo sub; echo e >&2'])\n"
                          "os.write(1, b'raw\\n')")
    assert out["stdout"] == "sub\nraw\n" and out["stderr"] == "e\n", out
    out = run(d, sb, cid, "import sys; sys.stdin.read()")
    assert out["result"] == {"text/plain": "''"}, out     # stdin is /dev/null, not the protocol
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_rich_results_html_and_a_matplotlib_plot_as_png(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "class T:\n    def _repr_html_(self):\n        return '<b>t</b>'\nT()")
    assert out["result"]["text/html"] == "<b>t</b>", out
    pytest.importorskip("matplotlib")
    out = run(d, sb, cid, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\n"
                          "None")
    pngs = [r for r in out["results"] if "image/png" in r]
    assert len(pngs) == 1, (out["error"], out["stderr"])
    assert base64.b64decode(pngs[0]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(d, sb, cid, "len(plt.get_fignums())")["result"]["text/plain"] == "0"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.parametrize("language,setup,loop,check", [
    ("python", "x = 7", "while True: pass", "x"),
    pytest.param("node", "var x = 7", "while (true) {}", "x",
                 marks=pytest.mark.skipif(not NODE, reason="no node")),
])
def test_an_infinite_loop_is_interrupted_at_its_timeout_and_the_context_lives(
        d, sb, language, setup, loop, check):
    cid = context(d, sb, language)
    run(d, sb, cid, setup)
    out = run(d, sb, cid, loop, timeout_ms=500)
    assert out["status"] == "timeout" and out["timed_out"] is True, out
    assert out["context_alive"] is True and out["error"] is not None, out
    assert run(d, sb, cid, check)["result"]["text/plain"] == "7"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_a_cell_that_ignores_sigint_gets_its_context_killed(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                          "while True: pass", timeout_ms=300)
    assert out["status"] == "killed" and out["context_alive"] is False, out
    assert out["error"]["name"] == "ContextKilled" and "SIGINT" in out["error"]["value"], out
    r = d.post(f"/v1/sandboxes/{sb}/contexts/{cid}/run", {"code": "1"})
    assert r.status == 409 and "gone" in r.error["message"], r
    assert d.get(f"/v1/sandboxes/{sb}/contexts/{cid}").json["state"] == "gone"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.skipif(not NODE, reason="no node")
def test_a_node_context_keeps_state_and_reports_errors(d, sb):
    cid = context(d, sb, "node")
    run(d, sb, cid, "var x = 41; function f(a) { return a + 1 }")
    out = run(d, sb, cid, "console.log(f(x)); ({a: [1, 2]})")
    assert out["stdout"] == "42\n" and out["result"]["text/plain"] == "{ a: [ 1, 2 ] }", out
    out = run(d, sb, cid, "null.f")
    assert out["error"]["name"] == "TypeError" and "<cell" in out["error"]["traceback"], out
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.parametrize("language", ["sh", "bash"])
def test_a_shell_context_keeps_variables_functions_and_cwd(d, sb, language):
    cid = context(d, sb, language)
    run(d, sb, cid, "x=41; f() { echo \"f$1\"; }; mkdir -p sub; cd sub")
    out = run(d, sb, cid, "echo $((x + 1)); f 2; basename \"$PWD\"; false")
    assert out["stdout"] == "42\nf2\nsub\n" and out["exit_code"] == 1, out
    out = run(d, sb, cid, "sleep 30; echo late", timeout_ms=500)
    assert out["status"] == "timeout" and out["context_alive"] is True, out
    assert run(d, sb, cid, "echo $x")["stdout"] == "41\n"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_env_applies_to_one_cell(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "import os; os.environ['K']", env={"K": "v"})
    assert out["result"]["text/plain"] == "'v'", out
    assert run(d, sb, cid, "import os; os.environ.get('K')")["result"] is None
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_streaming_events_then_done(d, sb):
    cid = context(d, sb)
    conn = UnixHTTPConnection(d.socket)
    conn.request("POST", f"/v1/sandboxes/{sb}/contexts/{cid}/run",
                 body=json.dumps({"code": "import time\nfor i in range(3):\n    print(i)\n"
                                          "    time.sleep(0.1)\n7", "stream": True}))
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "application/x-ndjson"
    lines = [json.loads(x) for x in r.read().decode().splitlines()]
    conn.close()
    outs = "".join(x["data"] for x in lines if x.get("stream") == "stdout")
    assert outs == "0\n1\n2\n", lines
    assert {"result": {"text/plain": "7"}} in lines, lines
    assert lines[-1]["done"]["status"] == "ok" and "stdout" not in lines[-1]["done"], lines
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_one_cell_at_a_time(d, sb):
    import threading
    cid = context(d, sb)
    conn = UnixHTTPConnection(d.socket)
    conn.request("POST", f"/v1/sandboxes/{sb}/contexts/{cid}/run",
                 body=json.dumps({"code": "import time; time.sleep(2)"}))
    import time
    time.sleep(0.5)
    r = d.post(f"/v1/sandboxes/{sb}/contexts/{cid}/run", {"code": "1"}, new_conn=True)
    assert r.status == 409 and "running a cell" in r.error["message"], r
    assert conn.getresponse().status == 200
    conn.close()
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_bad_input_is_a_4xx_naming_the_field(d, sb):
    base = f"/v1/sandboxes/{sb}/contexts"
    r = d.post(base, {"language": "ruby"})
    assert r.status == 400 and "language" in r.error["message"], r
    assert d.post(base, {}).status == 400
    cid = context(d, sb)
    r = d.post(f"{base}/{cid}/run", {"code": "x" * ((1 << 20) + 1)})
    assert r.status == 413 and "code" in r.error["message"], r
    r = d.post(f"{base}/{cid}/run", {"code": "1", "timeout_ms": 0})
    assert r.status == 400 and "timeout_ms" in r.error["message"], r
    r = d.post(f"{base}/{cid}/run", {"code": "1", "timeout_ms": 600000})
    assert r.status == 400 and "timeout_ms" in r.error["message"], r
    r = d.post(f"{base}/{'0' * 32}/run", {"code": "1"})
    assert r.status == 404, r
    assert d.post(f"{base}/nothex/run", {"code": "1"}).status == 400
    assert run(d, sb, cid, "1 + 1")["result"]["text/plain"] == "2"     # nothing changed
    d.delete(f"{base}/{cid}")


def test_contexts_end_with_their_sandbox(d):
    sid = d.create()
    cid = context(d, sid)
    pid = d.get(f"/v1/sandboxes/{sid}/contexts/{cid}").json["pid"]
    assert pid > 0
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    r = d.post(f"/v1/sandboxes/{sid}/contexts/{cid}/run", {"code": "1"})
    assert r.status == 409, r


def test_process_backends_answer_501(d):
    r = d.post("/v1/sandboxes", {"backend": "linux-native", "allow_degraded": True})
    if r.status != 201:
        pytest.skip(f"linux-native not available: {r}")
    sid = r.json["id"]
    r = d.post(f"/v1/sandboxes/{sid}/contexts", {"language": "python"})
    assert r.status == 501 and "background processes" in r.error["message"], r
    d.delete(f"/v1/sandboxes/{sid}")


def test_session_executions_keep_variables_and_are_listed(d):
    r = d.post("/v1/agents/ag/sessions", {})
    sess = r.json["session_id"]
    base = f"/v1/agents/ag/sessions/{sess}"
    assert d.post(base + "/executions", {"code": "x = 41"}).json["status"] == "completed"
    r = d.post(base + "/executions", {"code": "print(x + 1)"})
    assert r.json["result"]["stdout"] == "42\n", r
    r = d.post(base + "/executions", {"code": "import os; print(os.environ['E'])",
                                      "env": {"E": "v"}, "timeout_ms": 5000})
    assert r.json["result"]["stdout"] == "v\n", r
    r = d.post(base + "/executions", {"code": "while True: pass", "timeout_ms": 300})
    assert r.json["result"]["timed_out"] is True and r.json["status"] == "failed", r
    assert d.post(base + "/executions", {"code": "print(x)"}).json["result"]["stdout"] == "41\n"
    r = d.post(base + "/executions", {"code": "1/0"})
    assert "ZeroDivisionError" in r.json["result"]["stderr"], r
    r = d.get(base + "/executions")
    assert r.status == 200 and len(r.json["executions"]) == 6, r
    assert [e["status"] for e in r.json["executions"]][:2] == ["completed", "completed"]
    d.delete(base)


def test_the_cli_starts_runs_lists_and_removes_contexts(d, sb):
    r = d.cli("sandbox", "context", sb, "--language", "python")
    assert r.returncode == 0, r
    cid = r.stdout.decode().strip()
    assert len(cid) == 32
    r = d.cli("sandbox", "run-code", sb, cid, "-c", "x = 41\nprint('hi')")
    assert r.returncode == 0 and r.stdout == b"hi\n", r
    r = d.cli("sandbox", "run-code", sb, cid, input=b"x + 1")
    assert r.returncode == 0 and r.stdout == b"42\n", r
    r = d.cli("sandbox", "run-code", sb, cid, "--stream", "-c", "print(1)\n1/0")
    assert r.returncode == 1 and r.stdout == b"1\n", r
    assert b"ZeroDivisionError" in r.stderr, r
    r = d.cli("sandbox", "run-code", sb, cid, "--timeout", "300ms", "-c", "while True: pass")
    assert r.returncode == 124, r
    r = d.cli("sandbox", "run-code", sb, cid, "--json", "-c", "x")
    assert r.returncode == 0 and json.loads(r.stdout)["result"]["text/plain"] == "41", r
    r = d.cli("sandbox", "contexts", sb)
    assert r.returncode == 0 and cid.encode() in r.stdout, r
    r = d.cli("sandbox", "context", sb, "--language", "ruby")
    assert r.returncode == 125 and b"language" in r.stderr, r
    assert d.cli("sandbox", "context-rm", sb, cid).returncode == 0
    r = d.cli("sandbox", "run-code", sb, cid, "-c", "1")
    assert r.returncode == 125 and b"no context" in r.stderr, r


def test_a_shell_cell_that_exits_ends_its_context_with_its_status(d, sb):
    cid = context(d, sb, "sh")
    out = run(d, sb, cid, "echo bye; exit 4")
    assert out["stdout"] == "bye\n" and out["exit_code"] == 4, out
    assert out["context_alive"] is False, out
    r = d.get(f"/v1/sandboxes/{sb}/contexts/{cid}")
    assert r.json["state"] == "gone" and "exited (exit 4)" in r.json["reason"], r
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_contexts_per_sandbox_are_bounded(d):
    sid = d.create()
    cids = [context(d, sid, "sh") for _ in range(8)]
    r = d.post(f"/v1/sandboxes/{sid}/contexts", {"language": "sh"})
    assert r.status == 429 and "8 contexts" in r.error["message"], r
    assert d.delete(f"/v1/sandboxes/{sid}/contexts/{cids[0]}").status == 200
    context(d, sid, "sh")     # room again
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200


def test_a_session_execution_streams_its_events(d):
    sess = d.post("/v1/agents/st/sessions", {}).json["session_id"]
    base = f"/v1/agents/st/sessions/{sess}"
    conn = UnixHTTPConnection(d.socket)
    conn.request("POST", base + "/executions",
                 body=json.dumps({"code": "print('a')\n6 * 7", "stream": True}))
    r = conn.getresponse()
    assert r.status == 200
    lines = [json.loads(x) for x in r.read().decode().splitlines()]
    conn.close()
    assert {"stream": "stdout", "data": "a\n"} in lines, lines
    done = lines[-1]["done"]
    assert done["status"] == "completed" and done["result"]["value"] == {"text/plain": "42"}, lines
    assert "stdout" not in done["result"], lines
    assert len(d.get(base + "/executions").json["executions"]) == 1
    d.delete(base)


@pytest.mark.parametrize("how", ["delete", "destroy"])
def test_what_a_cell_started_dies_with_its_context(d, how):
    import secrets
    import time
    sid = d.create()
    marker = f"{3000 + secrets.randbelow(1000)}.{secrets.randbelow(10**6)}"
    cid = context(d, sid)
    run(d, sid, cid, f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'], "
                     "start_new_session=True)")
    deadline = time.monotonic() + 5
    while not pids_with(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with(f"sleep\0{marker}"), "the background process did not start"
    if how == "delete":
        assert d.delete(f"/v1/sandboxes/{sid}/contexts/{cid}").status == 200
    else:
        assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    deadline = time.monotonic() + 5
    while pids_with(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pids_with(f"sleep\0{marker}")
    if how == "delete":
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_figure_drawn_before_an_exception_still_comes_back(d, sb):
    pytest.importorskip("matplotlib")
    cid = context(d, sb)
    out = run(d, sb, cid, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nraise ValueError('x')")
    assert out["error"]["name"] == "ValueError", out
    assert [r for r in out["results"] if "image/png" in r], out["results"]
    assert run(d, sb, cid, "len(plt.get_fignums())")["result"]["text/plain"] == "0"
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_output_that_is_not_utf8_comes_as_base64(d, sb):
    cid = context(d, sb)
    out = run(d, sb, cid, "import os\nos.write(1, b'\\xff\\x00ok')\nprint('h\\u00e9')")
    assert out["stdout_encoding"] == "base64", out
    assert base64.b64decode(out["stdout"]) == b"\xff\x00okh\xc3\xa9\n", out
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


@pytest.mark.skipif(not NODE, reason="no node")
def test_a_node_cell_that_exits_ends_its_context_with_a_clear_error(d, sb):
    cid = context(d, sb, "node")
    out = run(d, sb, cid, "process.exit(5)")
    assert out["status"] == "killed" and "exited (status 5)" in out["error"]["value"], out
    d.delete(f"/v1/sandboxes/{sb}/contexts/{cid}")


def test_session_executions_of_one_language_take_turns(d):
    import threading
    sess = d.post("/v1/agents/turns/sessions", {}).json["session_id"]
    base = f"/v1/agents/turns/sessions/{sess}"
    answers = []

    def execute(code):
        conn = UnixHTTPConnection(d.socket)
        conn.request("POST", base + "/executions", body=json.dumps({"code": code}))
        r = conn.getresponse()
        answers.append((r.status, json.loads(r.read())))
        conn.close()

    # the first executions of a session start its context together: one context, not three
    ts = [threading.Thread(target=execute, args=("import time\nn = globals().get('n', 0) + 1\n"
                                                 "time.sleep(0.3)",)) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [a[0] for a in answers] == [200, 200, 200], answers
    assert d.post(base + "/executions", {"code": "print(n)"}).json["result"]["stdout"] == "3\n"
    d.delete(base)
