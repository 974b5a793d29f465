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
        # the server's socket in the test's own directory: nothing is left in /tmp/tmux-UID
        self.sock = str(tmp_path / "tmux.sock")
        self.dir = tmp_path
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENTD_SOCKET": agentd_socket,
               "TERM": "xterm", "HOME": str(tmp_path), "PS1": "outer$ "}
        subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null", "new-session", "-d",
                        "-s", "t", "-x", "100", "-y", "30",
                        *[a for k in ("AGENTD_SOCKET", "TERM") for a in ("-e", f"{k}={env[k]}")],
                        "bash --norc --noprofile"],
                       env=env, check=True, timeout=30)
        try:
            self.line("PS1='outer''$ '")
            self.wait_for("outer$ ")
        except BaseException:
            self.close()
            raise

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True,
                              text=True, timeout=30)

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.sock, "send-keys", "-t", "t", *keys], check=True,
                       timeout=30)

    def line(self, text):
        self.keys("-l", text)
        self.keys("Enter")

    def screen(self):
        return subprocess.run(["tmux", "-S", self.sock, "capture-pane", "-p", "-J", "-S",
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
        subprocess.run(["tmux", "-S", self.sock, "resize-window", "-t", "t", "-x", str(cols),
                        "-y", str(rows)], check=True, timeout=30)

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True,
                       timeout=30)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
