#!/usr/bin/env python3
"""gen-manpage.py AGENTD OUT: agentd.1 (roff) from the usage text the binary prints, so the
man page says what `agentd --help` and each `agentd VERB --help` say, never something else.
Run at build time (meson.build); the verbs are the ones `agentd --help` lists."""
import re
import subprocess
import sys


def helptext(agentd, *args):
    p = subprocess.run([agentd, *args, "--help"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    text = (p.stdout or p.stderr).rstrip("\n")
    if p.returncode != 0 or not text:
        sys.exit(f"gen-manpage: {agentd} {' '.join(args)} --help: rc={p.returncode} {p.stderr}")
    return text


def roff(text):
    """Literal text: backslashes and line-initial control characters escaped."""
    out = []
    for line in text.split("\n"):
        line = line.replace("\\", "\\e").replace("-", "\\-").replace("\u2014", "\\(em")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def main():
    agentd, out = sys.argv[1], sys.argv[2]
    top = helptext(agentd)
    title, _, rest = top.partition("\n")
    m = re.match(r"agentd (\S+) \S+ (.*)", title)
    version, summary = (m.group(1), m.group(2)) if m else ("", title)
    usage, _, tail = rest.partition("\n\n")
    tail = tail.strip()
    if "exit codes:" in usage:
        usage, _, tail = usage.partition("exit codes:")
        tail = "exit codes:" + tail
    verbs = []
    for line in usage.splitlines():
        m = re.match(r"\s+agentd (\w[\w-]*)", line)
        if m and m.group(1) not in verbs:
            verbs.append(m.group(1))
    page = [
        f'.TH AGENTD 1 "" "agentd {version}" "User Commands"',
        ".SH NAME",
        "agentd \\- " + roff(summary),
        ".SH SYNOPSIS",
        ".nf",
        roff("\n".join(l.strip() for l in usage.splitlines() if l.strip().startswith("agentd"))),
        ".fi",
        ".SH DESCRIPTION",
        "agentd runs untrusted commands (the code of AI agents) in sandboxes on Linux: "
        "one-shot with \\fBagentd run\\fR, or kept by the daemon \\fBagentd serve\\fR and "
        "driven through its HTTP API, its clients and \\fBagentd sandbox\\fR.",
        "Each command below is shown with the help it prints itself.",
        ".SH COMMANDS",
    ]
    for verb in verbs:
        if verb == "version":
            page += [".SS agentd version", "Prints the version."]
            continue
        page += [f".SS agentd {verb}", ".nf", roff(helptext(agentd, verb)), ".fi"]
    page += [
        ".SH EXIT STATUS", ".nf", roff(tail.removeprefix("exit codes:").strip()), ".fi",
        ".SH ENVIRONMENT",
        ".TP", ".B AGENTD_SOCKET",
        "The daemon's socket, for \\fBagentd serve\\fR and its clients (default "
        "/run/agentd/agentd.sock as root, else $XDG_RUNTIME_DIR/agentd.sock).",
        ".TP", ".B AGENTD_PLUGIN_DIR", "Backend plugins loaded before any verb runs.",
        ".SH SEE ALSO",
        "The documentation under docs/ of the source (api.md, cli.md, policy.md, "
        "backends.md, exit-codes.md), installed in the agentd doc directory.",
    ]
    with open(out, "w") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
