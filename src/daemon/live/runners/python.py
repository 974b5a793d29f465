# python.py: agentd's runner for Python code contexts (docs/contexts.md), run by the
# sandbox's own python3 as `python3 -c SRC`; standard library only. It keeps one namespace
# across cells and speaks the framed protocol on private dups of its stdin and stdout.
import ast, base64, builtins, io, json, linecache, os, signal, sys, threading, traceback, types

MAX_CHUNK = 65536
proto_in = os.dup(0)   # non-inheritable: the cell's children never see the protocol
proto_out = os.dup(1)
diag = os.dup(2)       # the runner's own complaints, for the host's error message
lock = threading.Lock()
cell_id = 0            # the running cell (0: none); output outside a cell is dropped


def send(kind, ident, payload):
    data = b"%s %d %d\n" % (kind.encode(), ident, len(payload)) + payload
    with lock:
        view = memoryview(data)
        while view:
            view = view[os.write(proto_out, view):]


def send_json(kind, ident, obj):
    send(kind, ident, json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape"))


# fd 1 and 2 become pipes relayed as frames: print, sys.stdout and a subprocess writing to
# its inherited fd 1 or 2 are captured alike. stdin is /dev/null.
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
relays = []
for fd, kind in ((1, "out"), (2, "err")):
    r, w = os.pipe()
    os.dup2(w, fd)
    os.close(w)
    relays.append((r, kind))
sys.stdout.reconfigure(line_buffering=True)
sys.stderr.reconfigure(line_buffering=True)


def pump(r, kind):
    """Relay what is in the pipe now (lock held by the caller)."""
    while True:
        try:
            chunk = os.read(r, MAX_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            return
        if cell_id:
            data = b"%s %d %d\n" % (kind.encode(), cell_id, len(chunk)) + chunk
            view = memoryview(data)
            while view:
                view = view[os.write(proto_out, view):]


def relay():
    import select
    poller = select.poll()
    for r, _ in relays:
        os.set_blocking(r, False)
        poller.register(r, select.POLLIN)
    kinds = dict(relays)
    while True:
        for fd, _ in poller.poll():
            with lock:
                pump(fd, kinds[fd])


def drain():
    """Everything the cell wrote before now goes out before its done frame."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    with lock:
        for r, kind in relays:
            pump(r, kind)


threading.Thread(target=relay, daemon=True).start()

os.environ.setdefault("MPLBACKEND", "Agg")   # figures render to PNG, never to a display
# Debian's matplotlib reads /etc/matplotlibrc, which a sandbox's /etc does not carry.
for rc in ("/etc/matplotlibrc", "/usr/share/matplotlib/mpl-data/matplotlibrc"):
    if os.path.exists(rc):
        os.environ.setdefault("MATPLOTLIBRC", rc)
        break
main = types.ModuleType("__main__")
main.__dict__["__builtins__"] = builtins
sys.modules["__main__"] = main
ns = main.__dict__

MIME_METHODS = (("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"),
                ("image/svg+xml", "_repr_svg_"), ("text/html", "_repr_html_"),
                ("text/markdown", "_repr_markdown_"), ("text/latex", "_repr_latex_"),
                ("application/json", "_repr_json_"))


def bundle(value):
    """The MIME bundle of a value, as notebook kernels build it."""
    b = {"text/plain": repr(value)}
    for mime, meth in MIME_METHODS:
        f = getattr(type(value), meth, None)
        if f is None:
            continue
        try:
            data = getattr(value, meth)()
        except Exception:
            continue
        if data is None:
            continue
        if isinstance(data, tuple):
            data = data[0]
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(bytes(data)).decode()
        elif mime == "application/json":
            data = json.dumps(data)
        elif mime in ("image/png", "image/jpeg") and isinstance(data, str):
            pass   # already base64
        b[mime] = str(data)
    return b


def display(*objs):
    """display(obj): a result of the running cell, as in a notebook."""
    for o in objs:
        drain()
        send_json("result", cell_id, bundle(o))


ns["display"] = display


def figures():
    """Every open matplotlib figure as a PNG result, then closed."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        nums = plt.get_fignums()
    except Exception:
        return
    for n in nums:
        fig = plt.figure(n)
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png")
        except Exception as e:
            print("figure %d: %s" % (n, e), file=sys.stderr)
            continue
        drain()
        send_json("result", cell_id, {"text/plain": repr(fig),
                                      "image/png": base64.b64encode(buf.getvalue()).decode()})
    plt.close("all")


def run(code, ident):
    """Exec the cell; the value of a final expression is its result."""
    name = "<cell %d>" % ident
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    tree = ast.parse(code, name, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), ns)
    if last is not None:
        value = eval(compile(last, name, "eval"), ns)
        if value is not None:
            ns["_"] = value
            figures()
            drain()
            send_json("result", ident, bundle(value))
            return
    figures()


def error_of(e):
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next   # the runner's own frames
    te = traceback.TracebackException(type(e), e, tb)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if f.filename != "<string>"])   # on_sigint too
    return {"name": type(e).__name__, "value": str(e), "traceback": "".join(te.format())}


def read_exact(n):
    out = bytearray()
    while len(out) < n:
        b = os.read(proto_in, n - len(out))
        if not b:
            sys.exit(0)
        out += b
    return bytes(out)


def read_frame():
    """One request frame: KIND ID LEN\\n then LEN bytes."""
    head = bytearray()
    while not head.endswith(b"\n"):
        b = os.read(proto_in, 1)
        if not b:
            sys.exit(0)
        head += b
        if len(head) > 64:
            raise SystemExit("agentd runner: bad request header")
    kind, ident, n = head.decode().split()
    return kind, int(ident), read_exact(int(n))


interruptible = False


def on_sigint(sig, frame):
    """SIGINT (the host's timeout) interrupts the cell's code, never the runner's frames."""
    if interruptible:
        raise KeyboardInterrupt


def cell(ident, code, env):
    global cell_id, interruptible
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with lock:
        cell_id = ident
    status = "ok"
    signal.signal(signal.SIGINT, on_sigint)   # a cell may have changed it
    try:
        interruptible = True
        run(code, ident)
    except BaseException as e:   # KeyboardInterrupt and SystemExit included
        interruptible = False
        status = "error"
        try:
            figures()   # what the cell drew before it raised, as a notebook shows it
            drain()
            send_json("error", ident, error_of(e))
        except KeyboardInterrupt:
            pass
    finally:
        interruptible = False
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    drain()
    with lock:
        cell_id = 0
    send_json("done", ident, {"status": status})


def serve():
    signal.signal(signal.SIGINT, on_sigint)
    send_json("hello", 0, {"language": "python", "version": sys.version.split()[0],
                           "pid": os.getpid()})
    env = {}
    while True:
        kind, ident, payload = read_frame()
        if kind == "env":
            k, _, v = payload.decode("utf-8", "surrogateescape").partition("=")
            env[k] = v
        elif kind == "run":
            cell(ident, payload.decode("utf-8", "surrogateescape"), env)
            env = {}


try:
    serve()
except Exception:
    os.write(diag, traceback.format_exc().encode()[-2000:])
    sys.exit(1)
