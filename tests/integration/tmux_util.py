"""A person at a terminal, for the tests of `agentd sandbox exec -it` and `attach`: a private
tmux server (its own socket) with one pane running bash, driven with send-keys and read
with capture-pane."""
import os
import subprocess
import time


class Tmux:
    """A private tmux server (its own socket) with one pane running bash, driven with
    send-keys and read with capture-pane."""

    def __init__(self, agentd_socket, tmp_path):
        self.name = f"agentd-test-{os.getpid()}-{time.monotonic_ns()}"
        self.dir = tmp_path
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENTD_SOCKET": agentd_socket,
               "TERM": "xterm", "HOME": str(tmp_path), "PS1": "outer$ "}
        subprocess.run(["tmux", "-L", self.name, "-f", "/dev/null", "new-session", "-d",
                        "-s", "t", "-x", "100", "-y", "30",
                        *[a for k in ("AGENTD_SOCKET", "TERM") for a in ("-e", f"{k}={env[k]}")],
                        "bash --norc --noprofile"],
                       env=env, check=True, timeout=30)
        self.line("PS1='outer''$ '")
        self.wait_for("outer$ ")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.name, *args], capture_output=True,
                              text=True, timeout=30)

    def keys(self, *keys):
        subprocess.run(["tmux", "-L", self.name, "send-keys", "-t", "t", *keys], check=True,
                       timeout=30)

    def line(self, text):
        self.keys("-l", text)
        self.keys("Enter")

    def screen(self):
        return subprocess.run(["tmux", "-L", self.name, "capture-pane", "-p", "-J", "-S",
                               "-200", "-t", "t"], capture_output=True, text=True,
                              timeout=30).stdout

    def wait_for(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on the screen within {timeout}s:\n{self.screen()}")

    def resize(self, cols, rows):
        subprocess.run(["tmux", "-L", self.name, "resize-window", "-t", "t", "-x", str(cols),
                        "-y", str(rows)], check=True, timeout=30)

    def close(self):
        subprocess.run(["tmux", "-L", self.name, "kill-server"], timeout=30)
