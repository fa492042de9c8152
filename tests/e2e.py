"""Helpers for end-to-end tests: a config pointing at a sandbox, and the console script run in a
subprocess exactly as a user or a systemd timer would run it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

# The frozen sandbox clock of the wire-format tests: Berlin +01:00, Kolkata +05:30, NY -05:00.
FROZEN_NOW = dt.datetime(2031, 3, 3, 9, 0, tzinfo=dt.timezone.utc)


def write_config(sandbox, state_dir: Path, path: Path, *, crm: str = "", sync: str = "") -> Path:
    path.write_text(f"""{sandbox.zoho_toml()}
[crm]
booking_id_field = "BookingId"
{crm}

[sync]
interval = 1
state_dir = "{state_dir}"
{sync}
""")
    return path


@dataclasses.dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        """The JSON log lines (``--log-format json``), each parsed."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    def event(self, name: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == name]


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> Run:
    full_env = dict(os.environ)
    for name in ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "CREDENTIALS_DIRECTORY",
                 "JOURNAL_STREAM", "NOTIFY_SOCKET", "BOOKINGS_SYNC_CONFIG"):
        full_env.pop(name, None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "bookings_sync", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_once(config: Path, *extra: str, env: dict | None = None) -> Run:
    return cli("--config", str(config), "--run-once", "--log-format", "json", *extra, env=env)


def reschedules(sandbox) -> list[dict]:
    return [e for e in sandbox.request_log if e["endpoint"] == "bookings.rescheduleappointment"]
