"""Helpers for end-to-end tests: times, a config pointing at a sandbox, and the console script
run in a subprocess exactly as a user or a systemd timer would run it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytz

UTC = dt.timezone.utc
# The real clock, to the second, when the tests started: sandboxes on the real clock book
# "future" meetings relative to it.
NOW = dt.datetime.now(UTC).replace(microsecond=0)
# The frozen sandbox clock of the wire-format tests: Berlin +01:00, Kolkata +05:30, NY -05:00.
FROZEN_NOW = dt.datetime(2031, 3, 3, 9, 0, tzinfo=UTC)

# Variables a developer's or CI's environment may carry that would change what a child does.
SCRUBBED_ENV = ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "CREDENTIALS_DIRECTORY",
                "JOURNAL_STREAM", "NOTIFY_SOCKET", "BOOKINGS_SYNC_CONFIG", "WATCHDOG_USEC",
                "WATCHDOG_PID")


def future(days: int, hour: int = 10, tz: str = "UTC") -> dt.datetime:
    """``hour`` o'clock in ``tz``, ``days`` days after :data:`NOW` (an aware UTC instant)."""
    zone = pytz.timezone(tz)
    day = (NOW + dt.timedelta(days=days)).astimezone(zone)
    return zone.localize(dt.datetime(day.year, day.month, day.day, hour)).astimezone(UTC)


# For tests of bursts larger than the default Bookings budget (250 calls a day).
PREMIUM_PLAN = "[bookings]\ndaily_call_limit = 100000\n"


def write_config(sandbox, state_dir: Path, path: Path, *, crm: str = "", sync: str = "",
                 tables: str = "") -> Path:
    """The config a test runs with: ``interval = 1``, the state in ``state_dir``."""
    path.write_text(sandbox.config_toml(state_dir, interval=1, crm=crm, sync=sync,
                                        tables=tables))
    return path


def child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(extra or {})
    return env


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


def cli(*args: str, env: dict | None = None, timeout: float = 60, stdin: str | None = None) -> Run:
    proc = subprocess.run([sys.executable, "-m", "bookings_sync", *args], capture_output=True,
                          text=True, env=child_env(env), timeout=timeout, input=stdin)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_once(config: Path, *extra: str, env: dict | None = None) -> Run:
    return cli("--config", str(config), "--run-once", "--log-format", "json", *extra, env=env)


def reschedules(sandbox) -> list[dict]:
    return [e for e in sandbox.request_log if e["endpoint"] == "bookings.rescheduleappointment"]
