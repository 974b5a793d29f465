#!/usr/bin/python3
"""A test double of the gondolin plugin's helper (plugins/gondolin/helper.mjs): the same NDJSON
protocol on stdio (docs/gondolin.md), with host processes standing in for the guest. The
real plugin .so, loaded by the real registry through `agentd`, drives it
(AGENTD_GONDOLIN_HELPER=this file). At create it starts a stand-in for the VM runner (a
sleeping child, as gondolin starts QEMU); execs are real child processes whose output it
relays in the order it reads it. Some argv[0]s make it hostile instead:

  double-oversize    a 300 KiB line            double-malformed   a line that is not JSON
  double-unknown-id  an answer to id 999999    double-silent      never answers the exec
  double-no-exit     answers, never ends       double-bad-base64  an output event of junk
  double-flood       output events without end (until a signal)
  double-refuse      refuses the exec with terminal escapes in its message

$GONDOLIN_DOUBLE_LOG (a directory): it writes its pid, the runner's and each exec's there,
and every request it got (requests.ndjson), for the tests to check."""
import base64
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

LOG = os.environ.get("GONDOLIN_DOUBLE_LOG")
out_lock = threading.Lock()
execs = {}
runner = None
env_base = {}


def log(name, text):
    if LOG:
        with open(os.path.join(LOG, name), "a") as f:
            f.write(text)


def send(msg):
    with out_lock:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


def raw(text):
    with out_lock:
        sys.stdout.write(text)
        sys.stdout.flush()


def answer(rid, result=None):
    send({"id": rid, "ok": True, **({"result": result} if result is not None else {})})


def refuse(rid, code, message):
    send({"id": rid, "ok": False, "error": {"code": code, "message": message}})


def relay(eid, proc):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    while sel.get_map():
        for key, _ in sel.select():
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj)
                continue
            send({"event": "output", "exec": eid, "stream": key.data,
                  "data": base64.b64encode(data).decode()})
    rc = proc.wait()
    execs.pop(eid, None)
    if rc < 0:
        send({"event": "exit", "exec": eid, "exit_code": 0, "signal": -rc})
    else:
        send({"event": "exit", "exec": eid, "exit_code": rc, "signal": None})


def flood(eid):
    chunk = base64.b64encode(b"x" * 32768).decode()
    while eid in execs:
        send({"event": "output", "exec": eid, "stream": "stdout", "data": chunk})


def hostile(rid, name):
    """True when argv[0] asked for a misbehaviour (done here)."""
    if name == "double-oversize":
        raw('{"event":"output","exec":%d,"stream":"stdout","data":"%s"}\n'
            % (rid, "QUFB" * (300 * 1024 // 4)))
    elif name == "double-malformed":
        raw("{this is not json\n")
    elif name == "double-unknown-id":
        send({"id": 999999, "ok": True})
    elif name == "double-refuse":
        refuse(rid, "failed", "refused \x1b[2J\x1b]0;title\x07 \u00e9\r\nforged line")
    elif name == "double-silent":
        pass
    elif name == "double-no-exit":
        answer(rid)
        execs[rid] = None  # signals are answered and ignored
    elif name == "double-bad-base64":
        answer(rid)
        send({"event": "output", "exec": rid, "stream": "stdout", "data": "%%%not base64"})
    elif name == "double-flood":
        answer(rid)
        execs[rid] = "flood"
        threading.Thread(target=flood, args=(rid,), daemon=True).start()
    else:
        return False
    return True


def do_exec(rid, req):
    argv = req["argv"]
    if hostile(rid, argv[0]):
        return
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env_base, **(req.get("env") or {})}
    # the guest's workdir: the host's when it exists, else /tmp
    cwd = req.get("cwd") if os.path.isdir(req.get("cwd") or "") else "/tmp"
    pipes = dict(stdin=subprocess.PIPE if req.get("stdin") else subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, **pipes)
    except (FileNotFoundError, PermissionError):
        proc = subprocess.Popen(["sh", "-c", 'echo "$0: not found" >&2; exit 127', argv[0]],
                                **pipes)
    log("pids", "exec %d\n" % proc.pid)
    execs[rid] = proc
    answer(rid)
    threading.Thread(target=relay, args=(rid, proc), daemon=True).start()


def do_signal(rid, req):
    proc = execs.get(req["exec"])
    if req["exec"] not in execs:
        return refuse(rid, "ended", "exec has ended")
    if proc == "flood":
        execs.pop(req["exec"], None)
        time.sleep(0.05)
        send({"event": "exit", "exec": req["exec"], "exit_code": 0, "signal": req["signal"]})
    elif proc is not None:
        proc.send_signal(req["signal"])
    answer(rid)


def do_stdin(rid, req):
    proc = execs.get(req["exec"])
    if not isinstance(proc, subprocess.Popen):
        return refuse(rid, "ended", "exec has ended")
    try:
        if req.get("data"):
            proc.stdin.write(base64.b64decode(req["data"]))
            proc.stdin.flush()
        if req.get("eof"):
            proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
    answer(rid)


def do_create(rid, req):
    global runner, workdir, env_base
    cfg = req.get("config") or {}
    if LOG:
        with open(os.path.join(LOG, "config.json"), "w") as f:
            json.dump(cfg, f)
    env_base = cfg.get("env") or {}
    # the stand-in for the VM runner gondolin starts: in this process group, as QEMU is
    runner = subprocess.Popen(["sleep", "3600"])
    log("pids", "runner %d\n" % runner.pid)
    answer(rid)


def handle(req):
    rid, op = req.get("id"), req.get("op")
    log("requests.ndjson", json.dumps(req) + "\n")
    if op == "probe":
        answer(rid, {"available": True, "missing": [], "features": ["helper-double"],
                     "warnings": []})
    elif op == "create":
        do_create(rid, req)
    elif op == "exec":
        do_exec(rid, req)
    elif op == "stdin":
        do_stdin(rid, req)
    elif op == "signal":
        do_signal(rid, req)
    elif op == "checkpoint":
        with open(req["path"], "w") as f:  # what gondolin's qcow2 would be
            f.write("double checkpoint of %d\n" % os.getpid())
        answer(rid)
    elif op == "restore":
        with open(req["path"]) as f:
            if f.read().startswith("double checkpoint of "):
                answer(rid)
            else:
                refuse(rid, "failed", "not a checkpoint")
    elif op == "close":
        answer(rid)
        os._exit(0)
    else:
        refuse(rid, "unsupported", "unknown op %r" % op)


def main():
    log("pids", "helper %d pgid %d\n" % (os.getpid(), os.getpgid(0)))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for line in sys.stdin:
        handle(json.loads(line))
    # stdin's end: the plugin is gone (its process died); as the real helper closes its VM
    for proc in list(execs.values()) + [runner]:
        if isinstance(proc, subprocess.Popen):
            proc.kill()
    os._exit(0)


if __name__ == "__main__":
    main()
