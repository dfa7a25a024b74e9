"""Start ``icp start`` as a subprocess (Ctrl-C to stop) for end-to-end tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IcpProcess:
    """An ``icp start`` subprocess and what it printed when ready."""

    def __init__(self, args: list[str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "icp.cli", "start", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("icp start exited:\n" + "".join(self.lines))
            self.lines.append(line)
            if "application subnet" in line or ("nns subnet" in line and "--subnets" in args):
                break
        else:
            raise RuntimeError("icp start did not become ready:\n" + "".join(self.lines))

    @property
    def app_range_start(self) -> str:
        """Return the first canister id of the first application subnet."""
        for line in self.lines:
            m = re.search(r"application subnet .* canister ids from (\S+)\)", line)
            if m:
                return m.group(1)
        raise AssertionError("no application subnet announced")

    def stop(self) -> str:
        """Stop with Ctrl-C (SIGINT) and return the rest of the output."""
        self.proc.send_signal(2)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out
