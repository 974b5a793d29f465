"""Installed like a real tool: `meson install` of the build into a DESTDIR, then the
installed `agentd run`, `agentd serve` (its module found from the installed binary, a request
through curl and one through the installed TypeScript SDK), the library through pkg-config
(a tiny C program links against the installed libagentd and runs), the systemd unit with the
installed paths, the man page made from the usage text."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def options():
    out = subprocess.check_output(["meson", "introspect", BUILD, "--buildoptions"], text=True)
    return {o["name"]: o["value"] for o in json.loads(out)}


@pytest.fixture(scope="module")
def inst():
    if shutil.which("meson") is None:
        pytest.skip("meson is not installed")
    o = options()
    dest = tempfile.mkdtemp(prefix="agentd-destdir-", dir="/var/tmp")
    os.chmod(dest, 0o755)
    p = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    root = dest + o["prefix"]

    def at(opt, *rest):
        v = o[opt]
        return os.path.join(dest + v if v.startswith("/") else os.path.join(root, v), *rest)

    class Inst:
        pass
    i = Inst()
    i.dest, i.prefix, i.root, i.at = dest, o["prefix"], root, at
    i.agentd = at("bindir", "agentd")
    yield i
    shutil.rmtree(dest, ignore_errors=True)


def test_the_files_are_where_they_belong(inst):
    assert os.access(inst.agentd, os.X_OK)
    assert os.path.exists(inst.at("libdir", "agentd", "agentd-serve.so"))
    assert os.path.exists(inst.at("libdir", "libagentd.a"))
    for h in ("agentd.h", "agentd-backend.h", "agentd-proxy.h"):
        assert os.path.exists(inst.at("includedir", h))
    assert os.path.exists(inst.at("libdir", "pkgconfig", "agentd.pc"))
    ts = inst.at("datadir", "agentd", "clients", "typescript")
    for f in ("package.json", "README.md", "src/index.js", "src/index.d.ts"):
        assert os.path.exists(os.path.join(ts, f)), f
    assert not os.path.exists(os.path.join(ts, "node_modules"))
    # the Python client (branch sdk-py), where the tree has it: its sources, pip-installable
    if os.path.isdir(os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python")):
        py = inst.at("datadir", "agentd", "clients", "python")
        assert os.path.exists(os.path.join(py, "pyproject.toml")), os.listdir(os.path.dirname(py))
    # nothing of the install is a dangling path into the build tree
    assert os.path.realpath(inst.agentd).startswith(inst.dest)


def test_the_systemd_unit_names_the_installed_binary(inst):
    unit = open(os.path.join(inst.root, "lib", "systemd", "system", "agentd.service")).read()
    assert f"ExecStart={inst.prefix}/bin/agentd serve " in unit, unit
    assert "@" not in unit.replace("man:agentd(1)", ""), "an unfilled @var@ is left"


def test_the_man_page_is_the_usage_text(inst):
    page = open(inst.at("mandir", "man1", "agentd.1")).read()
    assert page.startswith(".TH AGENTD 1")
    top = subprocess.run([inst.agentd, "--help"], capture_output=True, text=True, env=ENV).stdout
    verbs = [l.split()[1] for l in top.splitlines() if l.startswith("  agentd ")]
    assert {"run", "serve", "sandbox"} <= set(verbs), top
    for v in verbs:
        assert f".SS agentd {v}" in page, v
    # each verb's own --help is there, as roff-escaped literal text
    serve_help = subprocess.run([inst.agentd, "serve", "--help"], capture_output=True,
                                text=True, env=ENV)
    first = (serve_help.stdout or serve_help.stderr).splitlines()[0]
    assert first.replace("-", "\\-") in page
    if shutil.which("man"):
        text = subprocess.run(["man", "-l", inst.at("mandir", "man1", "agentd.1")],
                              capture_output=True, text=True, env={**ENV, "MANWIDTH": "100"}).stdout
        assert "--destroy-on-exit" in text.replace("‐", "-")


def test_installed_agentd_run(inst):
    p = subprocess.run([inst.agentd, "run", "--json", "--", "/bin/echo", "installed"],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["stdout"] == "installed\n"


def test_installed_agentd_serve_finds_its_module(inst):
    # the configured dir ($prefix/$libdir/agentd) is not on this host: the module must be
    # found from where the installed binary is
    assert not os.path.exists(os.path.join(inst.at("libdir", "agentd").replace(inst.dest, "", 1),
                                           "agentd-serve.so")), "installed for real on this host"
    d = tempfile.mkdtemp(prefix="agentd-inst-", dir="/var/tmp")
    os.chmod(d, 0o711)
    sock = os.path.join(d, "agentd.sock")
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen([inst.agentd, "serve", "--socket", sock, "--state-dir",
                             os.path.join(d, "state"), "--destroy-on-exit"],
                            stdout=log, stderr=log, env=ENV)
    try:
        def curl(method, path, body=None):
            args = ["curl", "-sS", "--unix-socket", sock, "-X", method, "http://agentd" + path]
            if body is not None:
                args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
            p = subprocess.run(args, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout)

        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert proc.poll() is None, open(os.path.join(d, "log")).read()
            assert time.monotonic() < deadline, "agentd serve did not come up"
            time.sleep(0.05)
        assert curl("GET", "/v1/health")["status"] == "ok"
        sb = curl("POST", "/v1/sandboxes", {})
        out = curl("POST", f"/v1/sandboxes/{sb['id']}/exec", {"argv": ["/bin/echo", "served"]})
        assert out["stdout"] == "served\n" and out["exit_code"] == 0, out
        if shutil.which("node"):
            sdk = inst.at("datadir", "agentd", "clients", "typescript", "src", "index.js")
            script = (f"import {{Client}} from {json.dumps(sdk)};\n"
                      "const c = new Client();\n"
                      f"const sb = await c.get({json.dumps(sb['id'])});\n"
                      "process.stdout.write((await sb.exec(['/bin/echo', 'from the sdk'])).stdout);\n"
                      "c.close();\n")
            p = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True,
                               text=True, timeout=60, env={**ENV, "AGENTD_SOCKET": sock})
            assert p.stdout == "from the sdk\n", p.stderr
        curl("DELETE", f"/v1/sandboxes/{sb['id']}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def test_installed_agentd_mcp(inst):
    """`agentd mcp --embedded` from the install (its module found as serve's): an MCP session
    over stdio that lists the tools, makes a sandbox and runs a command in it."""
    proc = subprocess.Popen([inst.agentd, "mcp", "--embedded"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)

    def call(mid, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if mid is not None:
            msg["id"] = mid
        if params is not None:
            msg["params"] = params
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
        if mid is None:
            return None
        while True:
            line = proc.stdout.readline()
            assert line, "agentd mcp ended: " + proc.stderr.read()
            ans = json.loads(line)
            if ans.get("id") == mid:
                assert "result" in ans, ans
                return ans["result"]

    try:
        init = call(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "test_install", "version": "0"}})
        assert init["serverInfo"]["name"] == "agentd"
        call(None, "notifications/initialized")
        names = [t["name"] for t in call(2, "tools/list")["tools"]]
        assert {"sandbox_create", "exec", "run_code"} <= set(names), names
        made = call(3, "tools/call", {"name": "sandbox_create", "arguments": {}})
        assert not made.get("isError"), made
        sid = made["structuredContent"]["sandbox_id"]
        ran = call(4, "tools/call", {"name": "exec", "arguments": {
            "sandbox_id": sid, "argv": ["/bin/echo", "from mcp"]}})
        assert not ran.get("isError"), ran
        assert ran["structuredContent"]["stdout"] == "from mcp\n", ran
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_program_links_against_the_installed_libagentd(inst, tmp_path):
    if shutil.which("pkg-config") is None or shutil.which("cc") is None:
        pytest.skip("pkg-config or cc is not installed")
    env = {**ENV, "PKG_CONFIG_PATH": inst.at("libdir", "pkgconfig"),
           "PKG_CONFIG_SYSROOT_DIR": inst.dest}
    ver = subprocess.run(["pkg-config", "--modversion", "agentd"], capture_output=True,
                         text=True, env=env)
    assert ver.returncode == 0, ver.stderr
    project = json.loads(subprocess.check_output(["meson", "introspect", BUILD, "--projectinfo"]))
    assert ver.stdout.strip() == project["version"]
    flags = subprocess.check_output(["pkg-config", "--cflags", "--libs", "agentd"], text=True,
                                    env=env).split()
    assert f"-I{inst.at('includedir')}" in flags, flags
    src = tmp_path / "tiny.c"
    src.write_text(r'''
#include <agentd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	agentd_spec spec;
	agentd_error err = {0};
	const char *json = "{\"profile\": \"standard\", \"limits\": {\"max_memory_bytes\": 268435456}}";
	if (agentd_policy_parse(json, strlen(json), &spec, &err) < 0) {
		fprintf(stderr, "parse: %s\n", err.msg);
		return 1;
	}
	char *out = agentd_policy_to_json(&spec);
	size_t n;
	agentd_available_backends(&n);
	printf("%zu backends\n%s\n", n, out);
	free(out);
	agentd_spec_free(&spec);
	return 0;
}
''')
    exe = tmp_path / "tiny"
    p = subprocess.run(["cc", "-o", str(exe), str(src), *flags], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30).stdout
    backends, _, policy = out.partition("\n")
    assert int(backends.split()[0]) >= 3
    assert json.loads(policy)["limits"]["max_memory_bytes"] == 268435456


# issue 15: vm-gondolin
def test_the_gondolin_plugin_is_installed_where_the_binary_looks(inst):
    plugins = os.path.join(inst.root, "lib", "agentd", "plugins")
    for f in ("agentd-gondolin.so", "gondolin-helper.mjs"):
        assert os.path.exists(os.path.join(plugins, f)), os.listdir(plugins)
    # the binary's default plugin dir is the one under its install prefix
    assert (inst.prefix + "/lib/agentd/plugins").encode() in open(inst.agentd, "rb").read()
    # loaded from there, the plugin finds the helper installed beside it (its probe runs)
    p = subprocess.run([inst.agentd, "backends", "--json"], capture_output=True, text=True,
                       env={**ENV, "AGENTD_PLUGIN_DIR": plugins}, timeout=60)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    g = next(b for b in json.loads(p.stdout) if b["name"] == "gondolin")
    assert "gondolin-helper.mjs" not in g.get("reason", ""), g
