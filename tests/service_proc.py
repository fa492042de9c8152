"""Helpers for service tests: the daemon as a child process (``python -m bookings_sync``, as
systemd starts it) and a real sd_notify socket to listen on."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from e2e import child_env


class NotifySocket:
    """The receiving end of sd_notify(3): a unix datagram socket, as systemd binds it."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[tuple[float, list[str]]] = []   # (monotonic time, lines)

    def receive(self, timeout: float) -> list[str] | None:
        """One datagram's lines, or None after ``timeout``."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        lines = data.decode().split("\n")
        self.received.append((time.monotonic(), lines))
        return lines

    def until(self, predicate, timeout: float) -> bool:
        """Receive until ``predicate(self.received)`` holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.receive(left)
        return True

    def count(self, line: str) -> int:
        return sum(line in lines for _, lines in self.received)

    @property
    def lines(self) -> list[str]:
        return [line for _, lines in self.received for line in lines]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "NotifySocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Daemon:
    """``python -m bookings_sync --config X`` with JSON logs to a file (no pipe to fill up)."""

    def __init__(self, config: Path, log: Path, *, notify: NotifySocket | None = None,
                 env: dict | None = None, args: tuple[str, ...] = ()):
        self.log = log
        extra = dict(env or {})
        if notify is not None:
            extra["NOTIFY_SOCKET"] = notify.path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bookings_sync", "--config", str(config),
             "--log-format", "json", "--log-file", str(log), *args],
            env=child_env(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def events(self, name: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        events = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [e for e in events if name is None or e["event"] == name]

    def send(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.poll() is not None else ""

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stderr.close()
