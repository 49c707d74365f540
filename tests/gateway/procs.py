"""``gaemi serve`` as a real process for tests that kill it, restart it or measure its memory:
the command line as a user runs it, on a free loopback port, in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.gateway.live import WsClient

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """The resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class ServeProcess:
    """``python -m gaemi.clients.cli serve`` with its journal and keys in ``folder``; the output is
    collected in ``lines`` by a thread (so the pipe never fills)."""

    def __init__(self, folder: Path, *extra: str, port: int | None = None,
                 dev_accounts: int = 4) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.journal = folder / "journal.gaemij"
        self.keys_file = folder / "keys.json"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gaemi.clients.cli", "serve", "--port", str(self.port),
             "--journal", str(self.journal), "--dev-keys-file", str(self.keys_file),
             "--dev-accounts", str(dev_accounts), "--index", "none", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(120) or self.process.poll() is not None:
            self.process.kill()
            raise AssertionError("gaemi serve did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "stop with Ctrl-C" in line:
                self._ready.set()
        self._ready.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def secret(self, key: str) -> str:
        rows = json.loads(self.keys_file.read_text())["keys"]
        return next(str(r["secret"]) for r in rows if r["apiKey"] == key)

    def client(self, key: str | None = None, encoding: str = "gaemi.json",
               **logon: Any) -> WsClient:
        c = WsClient(self.url, encoding)
        if key is not None:
            c.logon(key, self.secret(key), **logon)
        return c

    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """``kill -9``: no shutdown of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self._reader.join(30)
        return code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
