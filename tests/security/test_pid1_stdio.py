"""issue 13: oci-runtime. A sandbox's pid 1 may be reachable from inside (an OCI runtime's
init runs as the commands' uid), but its stdio must be /dev/null: a host pipe or file there
(what a runtime's create hands the init unless told otherwise) lets a command write outside
its sandbox through /proc/1/fd, unbounded."""
from .secsuite import check, probe


def test_pid1_stdio_is_dev_null_or_out_of_reach(backend):
    for fd in (0, 1, 2):
        r, verdict, line = probe(backend, "readlink", f"/proc/1/fd/{fd}")
        if verdict == "ALLOWED" and line.endswith("-> /dev/null"):
            verdict, line = "BLOCKED", f"pid 1's fd {fd} is /dev/null ({line})"
        check("pid1-stdio", backend, verdict, line)
