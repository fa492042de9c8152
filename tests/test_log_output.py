"""Logs that are good to tail: one event per line in each format, journald priorities,
a log file that survives logrotate, and no credential anywhere."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from bookings_sync.sandbox import Sandbox

from e2e import cli, write_config

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
LOGFMT_PAIR = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line: str) -> dict:
    pairs = LOGFMT_PAIR.findall(line)
    rebuilt = " ".join(f"{k}={v}" for k, v in pairs)
    assert rebuilt == line, f"not logfmt: {line!r}"
    return {k: (shlex.split(v)[0] if v.startswith('"') else v) for k, v in pairs}


@pytest.fixture
def busy(tmp_path):
    """A sandbox with one refused and one applied reschedule waiting: info and warning lines."""
    with Sandbox() as sb:
        sb.book(start=NOW + dt.timedelta(days=4), time_zone="UTC", staff_id="ana")
        refused, _ = sb.book(start=NOW + dt.timedelta(days=4, hours=2), time_zone="UTC",
                             staff_id="ana")
        moved, _ = sb.book(start=NOW + dt.timedelta(days=6), time_zone="Asia/Kolkata")
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        assert cli("--config", str(config), "--run-once").code == 0
        sb.crm_move(refused, NOW + dt.timedelta(days=4))
        sb.crm_move(moved, NOW + dt.timedelta(days=7))
        yield sb, config


def run(config, *args, env=None):
    return cli("--config", str(config), "--run-once", *args, env=env)


def test_json_lines_parse_one_event_each(busy):
    sb, config = busy
    result = run(config, "--log-format", "json")
    lines = result.stderr.strip().splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["event"] for e in events} >= {"cycle.start", "action", "cycle.end"}
    assert all({"timestamp", "level", "event"} <= e.keys() for e in events)
    outcomes = sorted(e["outcome"] for e in events if e["event"] == "action")
    assert outcomes == ["done", "refused"]


def test_logfmt_lines_parse(busy):
    sb, config = busy
    result = run(config, "--log-format", "logfmt")
    records = [parse_logfmt(line) for line in result.stderr.strip().splitlines()]
    refused = [r for r in records if r.get("outcome") == "refused"]
    assert refused and "Slot not available" in refused[0]["reason"]
    assert all(r["level"] in ("info", "warning", "error") for r in records)


def test_console_is_one_event_per_line(busy):
    sb, config = busy
    result = run(config, "--log-format", "console")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4      # cycle.start, two actions, cycle.end
    assert all(re.match(r"^\d{4}-\d\d-\d\dT", line) for line in lines)
    assert any("[warning" in line and "refused" in line for line in lines)


def test_journald_lines_carry_the_syslog_priority(busy):
    sb, config = busy
    # JOURNAL_STREAM must name stderr's own device:inode (systemd.exec(5)); a pipe stands in.
    read_end, write_end = os.pipe()
    info = os.fstat(write_end)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "BOOKINGS_SYNC_CONFIG")}
    env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                             "--run-once", "--log-format", "logfmt"], env=env,
                            stdout=subprocess.DEVNULL, stderr=write_end)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        lines = pipe.read().strip().splitlines()
    proc.wait(timeout=60)
    assert all(re.match(r"^<[3467]>", line) for line in lines), lines
    for line in lines:
        record = parse_logfmt(line[3:])
        expected = {"info": "<6>", "warning": "<4>", "error": "<3>"}[record["level"]]
        assert line.startswith(expected)
    assert any(line.startswith("<4>") for line in lines)


def test_the_log_file_is_reopened_after_logrotate_moves_it(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        log = tmp_path / "bookings-sync.log"
        daemon = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                                   "--log-format", "json", "--log-file", str(log)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while (not log.exists() or "cycle.end" not in log.read_text()) and time.monotonic() < deadline:
                time.sleep(0.1)
            os.rename(log, tmp_path / "bookings-sync.log.1")     # what logrotate does
            deadline = time.monotonic() + 15
            while (not log.exists() or "cycle.end" not in log.read_text()) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        rotated = (tmp_path / "bookings-sync.log.1").read_text().splitlines()
        fresh = log.read_text().splitlines()
        assert rotated and fresh
        assert all(json.loads(line)["event"] for line in rotated + fresh)


def test_no_credential_in_logs_state_or_errors(busy, tmp_path):
    sb, config = busy
    sb.expire_tokens()               # forces a refresh: a new access token in play
    result = run(config, "--log-format", "json", "--log-level", "debug")
    cache = json.loads((tmp_path / "state" / "token.json").read_text())
    secrets = [sb.credentials["client_secret"], sb.credentials["refresh_token"],
               cache["access_token"], *sb.world.tokens]
    assert oct(os.stat(tmp_path / "state" / "token.json").st_mode & 0o777) == "0o600"
    texts = [result.stderr, result.stdout,
             (tmp_path / "state" / "state.json").read_text(),
             (tmp_path / "state" / "last-cycle.json").read_text(),
             cli("--config", str(config), "status", "--json").stdout]
    for secret in secrets:
        for text in texts:
            assert secret not in text
