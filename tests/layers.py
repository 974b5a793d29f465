#!/usr/bin/env python3
"""layers.py: the tree's layering, checked (a meson test of the unit suite).

Each folder of src/ is a layer with one private header; a file may include the private
headers of its own layer and of the layers below it, never above or sideways:

    common <- jail, net <- host <- image <- engine <- backends <- backends/container,
        backends/oci <- core
    common <- daemon/store <- daemon/http <- daemon/live <- daemon/api <- daemon
    common <- mcp <- daemon, cli
    common <- guest (the micro-VM's agent); container <- backends/microvm <- core
    container <- runtime (agentd as an OCI runtime) <- core

Public headers (include/) and system headers are open to all. Two checks:
  1. includes: every `#include "..."` of src/ names a header by its path under src/ (or a
     public or generated header) and points down;
  2. calls (with a build dir): no object of a layer references a private symbol defined
     in a layer above or beside it (public agentd_* functions are the contract and open to
     all, as they are to plugins).
usage: layers.py SOURCE_ROOT [BUILD_DIR]
"""
import os
import re
import subprocess
import sys

# layer -> the layers it may use (besides itself); order is bottom-up
BELOW = {
    "common": [],
    "jail": ["common"],
    "net": ["common"],
    "host": ["common", "jail"],
    "image": ["common", "jail", "host"],
    "engine": ["common", "jail", "host", "image"],
    "backends": ["common", "jail", "net", "host", "image", "engine"],
    "container": ["common", "jail", "net", "host", "image", "engine", "backends"],
    "oci": ["common", "jail", "net", "host", "image", "engine", "backends"],
    "core": ["common", "jail", "net", "host", "image", "engine", "backends", "container",
             "oci", "microvm", "runtime"],
    "store": ["common"],
    "http": ["common", "store"],
    "live": ["common", "store", "http"],
    "api": ["common", "store", "http", "live"],
    "daemon": ["common", "store", "http", "live", "api", "mcp"],
    "cli": ["common", "mcp"],  # issue 14: mcp (the security table judges its framing)
    # issue 14: mcp
    "mcp": ["common"],
    # issue 15: the micro-VM backend (it runs QEMU in the container's jail) and the guest
    # agent (static, in the VM: the protocol codec of common/ and nothing else)
    "microvm": ["common", "jail", "net", "host", "image", "engine", "backends", "container"],
    "guest": ["common"],
    # issue 16: agentd as an OCI runtime (the container's jail from a config.json)
    "runtime": ["common", "jail", "net", "host", "image", "engine", "backends", "container"],
}
FOLDERS = [  # longest prefix first
    ("src/lib/backends/container", "container"),
    ("src/lib/backends/oci", "oci"),
    ("src/lib/backends/microvm", "microvm"),  # issue 15
    ("src/guest", "guest"),  # issue 15
    ("src/lib/image", "image"),
    ("src/lib/runtime", "runtime"),  # issue 16
    ("src/lib/backends", "backends"),
    ("src/lib/engine", "engine"),
    ("src/lib/host", "host"),
    ("src/lib/jail", "jail"),
    ("src/lib/net", "net"),
    ("src/lib/core", "core"),
    ("src/common", "common"),
    ("src/daemon/store", "store"),
    ("src/daemon/http", "http"),
    ("src/daemon/live", "live"),
    ("src/daemon/api", "api"),
    ("src/daemon", "daemon"),
    ("src/cli", "cli"),
    ("src/mcp", "mcp"),  # issue 14: mcp
]
GENERATED = {"seccomp_default_bpf.h"}


def layer_of(rel):
    for prefix, name in FOLDERS:
        if rel == prefix or rel.startswith(prefix + "/"):
            return name
    return None


def check_includes(root):
    errors = []
    public = set(os.listdir(os.path.join(root, "include")))
    inc_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    for dirpath, _, files in os.walk(os.path.join(root, "src")):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            me = layer_of(rel)
            if me is None:
                errors.append(f"{rel}: in no layer (add its folder to tests/layers.py)")
                continue
            for m in inc_re.finditer(open(path, encoding="utf-8").read()):
                target = m.group(1)
                if target in public or target in GENERATED:
                    continue
                if not os.path.exists(os.path.join(root, "src", target)):
                    errors.append(f"{rel}: #include \"{target}\": name private headers by "
                                  "their path under src/ (e.g. \"lib/jail/jail.h\")")
                    continue
                other = layer_of("src/" + target)
                if other != me and other not in BELOW[me]:
                    errors.append(f"{rel} ({me}) includes {target} ({other}): points "
                                  f"{'up' if me in BELOW.get(other, []) else 'sideways'}")
    return errors


def objects(build):
    """(layer, source, object) of every compiled source of src/ in the build dir."""
    out = []
    for target in os.listdir(build):
        d = os.path.join(build, target)
        if not (target.endswith(".p") and os.path.isdir(d)):
            continue
        for o in os.listdir(d):
            if o.startswith("src_") and o.endswith(".c.o"):
                out.append((target, o, os.path.join(d, o)))
    return out


def source_of(obj_name, root):
    """src_lib_jail_mounts_mounts.c.o -> src/lib/jail/mounts/mounts.c (by trying splits)."""
    parts = obj_name[: -len(".o")].split("_")
    def walk(i, cur):
        if i == len(parts):
            return cur if os.path.isfile(os.path.join(root, cur)) else None
        for j in range(i + 1, len(parts) + 1):
            seg = "_".join(parts[i:j])
            nxt = os.path.join(cur, seg) if cur else seg
            if j == len(parts) and os.path.isfile(os.path.join(root, nxt)):
                return nxt
            if os.path.isdir(os.path.join(root, nxt)):
                r = walk(j, nxt)
                if r:
                    return r
        return None
    return walk(0, "")


def check_calls(root, build):
    errors = []
    defined = {}   # symbol -> (layer, source)
    used = []      # (layer, source, symbol)
    seen = set()
    for target, o, path in objects(build):
        src = source_of(o, root)
        if not src or src in seen:
            continue
        seen.add(src)
        me = layer_of(src)
        if me is None:
            continue
        nm = subprocess.run(["nm", path], capture_output=True, text=True, check=True)
        for line in nm.stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "TDBR":
                defined[f[2]] = (me, src)
            elif len(f) == 2 and f[0] == "U":
                used.append((me, src, f[1]))
    for me, src, sym in used:
        if sym not in defined or sym.startswith("agentd_"):
            continue
        other, where = defined[sym]
        if other != me and other not in BELOW[me]:
            errors.append(f"{src} ({me}) calls {sym} of {where} ({other})")
    return errors, len(seen)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    errors = check_includes(root)
    n_obj = 0
    if len(sys.argv) > 2:
        call_errors, n_obj = check_calls(root, os.path.abspath(sys.argv[2]))
        errors += call_errors
        if n_obj < 20:
            errors.append(f"only {n_obj} objects of src/ found in {sys.argv[2]}")
    for e in errors:
        print("layers:", e)
    if errors:
        print(f"layers: {len(errors)} violation(s); the rule is in tests/layers.py")
        return 1
    print(f"layers: includes point down; {n_obj} objects call only down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
