"""Logs that are good to tail: one event per line in each format (every line parsed), journald
priorities when stderr really is the journal, a log file that survives logrotate, and no
credential in any log line or state file."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from bookings_sync import logs
from bookings_sync.sandbox import Sandbox

from e2e import NOW, child_env, cli, write_config
from bookings_sync.sandbox import wait_for
from service_proc import Daemon

LOGFMT_PAIR = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')
PRIORITY = {"debug": "<7>", "info": "<6>", "warning": "<4>", "error": "<3>"}


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


def run_on_journal(config, *args, journal_stream: str | None = None) -> tuple[int, list[str]]:
    """Run with stderr on a pipe and JOURNAL_STREAM naming that very pipe (device:inode), as
    systemd does for a service whose output goes to the journal."""
    read_end, write_end = os.pipe()
    info = os.fstat(write_end)
    stream = journal_stream or f"{info.st_dev}:{info.st_ino}"
    proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                             "--run-once", *args], stdout=subprocess.DEVNULL, stderr=write_end,
                            env=child_env({"JOURNAL_STREAM": stream}))
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        lines = pipe.read().splitlines()
    return proc.wait(timeout=60), lines


def test_json_lines_parse_one_event_each(busy):
    sb, config = busy
    result = run(config, "--log-format", "json")
    lines = result.stderr.strip().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events][0] == "cycle.start"
    assert {e["event"] for e in events} == {"cycle.start", "action", "cycle.end"}
    assert all({"timestamp", "level", "event"} <= e.keys() for e in events)
    actions = sorted((e for e in events if e["event"] == "action"), key=lambda e: e["outcome"])
    assert [a["outcome"] for a in actions] == ["done", "refused"]
    # An action line says what happened, between which times, in which zone, and Zoho's reason.
    assert {"meeting_id", "booking_id", "old", "new", "tz"} <= actions[0].keys()
    assert actions[0]["tz"] == "Asia/Kolkata" and "Slot not available" in actions[1]["reason"]


def test_logfmt_lines_parse(busy):
    sb, config = busy
    result = run(config, "--log-format", "logfmt")
    records = [parse_logfmt(line) for line in result.stderr.strip().splitlines()]
    assert [r["event"] for r in records][::3] == ["cycle.start", "cycle.end"]
    refused = [r for r in records if r.get("outcome") == "refused"]
    assert refused and refused[0]["reason"].startswith("Slot not available")   # quoted value
    assert all(r["level"] in ("info", "warning", "error") for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", r["timestamp"])
               for r in records)


def test_console_is_one_event_per_line(busy):
    sb, config = busy
    result = run(config, "--log-format", "console")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4      # cycle.start, two actions, cycle.end
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\S+ \[(info|warning|error)\s*\] ", line)
               for line in lines), lines
    assert "\x1b[" not in result.stderr          # no colour codes when stderr is not a TTY
    assert "cycle.start" in lines[0] and "cycle.end" in lines[-1]
    assert any("[warning" in line and "refused" in line for line in lines)


def test_journald_lines_carry_the_syslog_priority(busy, tmp_path):
    sb, config = busy
    code, lines = run_on_journal(config, "--log-format", "logfmt")
    assert code == 1       # one refusal
    # A revoked refresh token: the cycle fails on authentication, at error level.
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(config.read_text().replace(sb.credentials["refresh_token"], "1000.revoked"))
    code, error_lines = run_on_journal(wrong, "--log-format", "json")
    assert code == 3
    seen = set()
    for line in lines + error_lines:
        prefix, body = line[:3], line[3:]
        record = json.loads(body) if body.startswith("{") else parse_logfmt(body)
        assert prefix == PRIORITY[record["level"]], line
        seen.add(prefix)
    assert seen == {"<6>", "<4>", "<3>"}


def test_no_priority_prefix_when_journal_stream_is_not_stderr(busy):
    """JOURNAL_STREAM leaks into shells started by services (terminals run as user units);
    only a stderr whose device:inode matches is the journal."""
    sb, config = busy
    code, lines = run_on_journal(config, "--log-format", "json", journal_stream="8:12345")
    assert lines and all(line.startswith("{") for line in lines)
    assert all(json.loads(line)["event"] for line in lines)


def test_the_log_file_is_reopened_after_logrotate_moves_it(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        log = tmp_path / "bookings-sync.log"
        rotated = tmp_path / "bookings-sync.log.1"
        with Daemon(config, log) as daemon:
            assert wait_for(lambda: log.exists() and "cycle.end" in log.read_text(), 15)
            os.rename(log, rotated)                        # what logrotate does
            moved_size = rotated.stat().st_size
            assert wait_for(lambda: log.exists() and "cycle.end" in log.read_text(), 15)
            assert daemon.stop() == 0
        old = [json.loads(line) for line in rotated.read_text().splitlines()]
        new = [json.loads(line) for line in log.read_text().splitlines()]
        assert {"daemon.start", "cycle.start", "cycle.end"} <= {e["event"] for e in old}
        assert new[0]["event"] == "cycle.start" and new[-1]["event"] == "daemon.stopped"
        # The moved file got at most the end of the cycle running at the rename, then nothing.
        assert rotated.stat().st_size - moved_size < 1000
        assert old[-1]["timestamp"] <= new[0]["timestamp"]


def test_no_credential_in_logs_state_or_errors(busy, tmp_path):
    sb, config = busy
    sb.expire_tokens()               # forces a refresh: a new access token in play
    result = run(config, "--log-format", "json", "--log-level", "debug")
    token_file = tmp_path / "state" / "token.json"
    cache = json.loads(token_file.read_text())
    assert oct(os.stat(token_file).st_mode & 0o777) == "0o600"
    secrets = [sb.credentials["client_secret"], sb.credentials["refresh_token"],
               cache["access_token"], *sb.world.tokens]
    assert len(secrets) >= 4
    assert any(json.loads(line)["event"] == "zoho.request" for line in result.stderr.splitlines())
    texts = [result.stderr, result.stdout,
             (tmp_path / "state" / "state.json").read_text(),
             (tmp_path / "state" / "last-cycle.json").read_text(),
             cli("--config", str(config), "status", "--json").stdout]
    # A failing refresh logs Zoho's answer; it must not echo what was sent.
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(config.read_text().replace(sb.credentials["refresh_token"],
                                                "1000.a-refresh-token-zoho-does-not-know"))
    failed = run(wrong, "--log-format", "json", "--log-level", "debug")
    assert failed.code == 3
    texts += [failed.stderr, failed.stdout]
    secrets.append("1000.a-refresh-token-zoho-does-not-know")
    for secret in secrets:
        for text in texts:
            assert secret not in text


# What a hostile or broken Zoho may put in a message: clear screen, bell, a line break, a C1 CSI,
# DEL, a Unicode line separator and a right-to-left override.
HOSTILE = "Slot taken\x1b[2J\x07\r\nlevel=error event=forged\x9b31m\x7f\u2028\u202e!"
HOSTILE_ESCAPED = ("Slot taken\\x1b[2J\\x07\\r\\nlevel=error event=forged\\x9b31m\\x7f\\u2028"
                   "\\u202e!")
RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("fmt", ["json", "logfmt", "console"])
def test_control_characters_from_zoho_are_escaped_in_every_format(sb, tmp_path, fmt):
    meeting_id, _ = sb.book(start=NOW + dt.timedelta(days=4))
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    assert run(config).code == 0                                   # the baseline
    sb.crm_move(meeting_id, NOW + dt.timedelta(days=5))
    sb.inject("rescheduleappointment", "refuse", message=HOSTILE)
    result = run(config, "--log-format", fmt)
    assert result.code == 1                                        # the refusal
    assert not RAW_CONTROLS.search(result.stderr), repr(result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 3            # cycle.start, the action, cycle.end: one line per event
    assert "cycle.start" in lines[0] and "cycle.end" in lines[2]
    action = lines[1]
    if fmt == "json":
        assert json.loads(action)["reason"].startswith(HOSTILE_ESCAPED)
    elif fmt == "logfmt":
        record = parse_logfmt(action)
        assert record["event"] == "action" and record["reason"].startswith(HOSTILE_ESCAPED)
    else:   # the console quotes a value with spaces as Python does (repr): backslashes double
        assert f"reason={HOSTILE_ESCAPED!r}" in action


def test_printable_escapes_what_moves_a_terminal_and_keeps_the_rest():
    assert logs.printable("Zürich → 10:00, tab\there") == "Zürich → 10:00, tab\\there"
    assert logs.printable("\x00\x1b\x7f\x85\x9f") == "\\x00\\x1b\\x7f\\x85\\x9f"
    assert logs.printable("a\u2029b\u2066c") == "a\\u2029b\\u2066c"
    text = "nothing to escape"
    assert logs.printable(text) is text
    assert logs.printable(HOSTILE).isprintable()


def test_escaping_reaches_keys_nested_values_and_objects():
    class Shouty:
        def __str__(self):
            return "obj\x1b[31m"

    event = logs.escape_controls(None, "info", {
        "event": "x\ny", "bad key\x07": 1, "nested": {"k\r": ["\x1b", ("\x07",)]},
        "object": Shouty(), "number": 3, "none": None})
    assert event == {"event": "x\\ny", "bad\\x20key\\x07": 1,
                     "nested": {"k\\r": ["\\x1b", ("\\x07",)]}, "object": "obj\\x1b[31m",
                     "number": 3, "none": None}


def test_a_log_file_that_cannot_be_reopened_keeps_the_open_one(tmp_path):
    """SIGHUP after the log directory itself was moved away: one line says so, and lines keep
    going to the file already open rather than nowhere."""
    folder = tmp_path / "logs"
    folder.mkdir()
    handler = logs.open_log_file(str(folder / "sync.log"))
    try:
        folder.rename(tmp_path / "logs.old")
        problem = handler.reopen()
        assert problem == (f"cannot reopen log file {folder / 'sync.log'}: No such file or "
                           f"directory; still writing to the file it had open")
        handler.stream.write("still here\n")
        handler.flush()
        assert (tmp_path / "logs.old" / "sync.log").read_text() == "still here\n"
        folder.mkdir()                       # the directory is back: reopen works again
        assert handler.reopen() is None and (folder / "sync.log").exists()
    finally:
        handler.close()
