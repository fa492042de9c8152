"""Operator commands against the sandbox: check, status, retry, --version, --help."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bookings_sync.sandbox import Sandbox
from bookings_sync.store import SnapshotStore

from e2e import cli, run_once, write_config

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def config(sb, tmp_path):
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml")


def test_check_on_a_healthy_setup_is_all_ticks(sb, config):
    result = cli("--config", str(config), "check")
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 4 and all(line.startswith("✓") for line in lines)
    assert "booking_id_field = 'BookingId' exists" in result.stdout
    assert sb.calls["crm.fields"] == 1 and sb.calls["bookings.getappointment"] == 1


def test_check_names_the_likely_cause_of_a_wrong_secret(sb, config):
    config.write_text(config.read_text().replace(sb.credentials["client_secret"], "not-it-at-all"))
    result = cli("--config", str(config), "check")
    assert result.code != 0
    assert "✗ token refresh" in result.stdout and "invalid_client" in result.stdout
    assert "data center" in result.stdout
    assert "not-it-at-all" not in result.stdout + result.stderr


def test_check_names_a_missing_booking_id_field_and_suggests_one(sb, config):
    config.write_text(config.read_text().replace('booking_id_field = "BookingId"',
                                                 'booking_id_field = "BookingID"'))
    result = cli("--config", str(config), "check")
    assert result.code == 1
    assert "✗ [crm] booking_id_field = 'BookingID' is not a Meetings field" in result.stdout
    assert "did you mean 'BookingId'" in result.stdout


def refused_setup(sb, config):
    sb.book(start=NOW + dt.timedelta(days=5), time_zone="UTC", staff_id="ana")
    meeting_id, booking_id = sb.book(start=NOW + dt.timedelta(days=5, hours=3), time_zone="UTC",
                                     staff_id="ana")
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, NOW + dt.timedelta(days=5))
    assert run_once(config).code == 1
    return meeting_id, booking_id


def test_status_shows_a_recorded_failure_with_its_reason(sb, config):
    meeting_id, booking_id = refused_setup(sb, config)
    text = cli("--config", str(config), "status")
    assert text.code == 0
    assert "failures:         1" in text.stdout
    assert f"meeting {meeting_id} booking {booking_id}: reschedule refused" in text.stdout
    assert "Slot not available" in text.stdout
    assert "last cycle:" in text.stdout and "action-failed" in text.stdout
    data = json.loads(cli("--config", str(config), "status", "--json").stdout)
    [failure] = data["failures"]
    assert failure["meeting_id"] == meeting_id and "Slot not available" in failure["reason"]
    assert failure["age_seconds"] >= 0
    assert data["meetings_tracked"] == 2 and data["last_cycle"]["outcome"] == "action-failed"


def test_status_reads_while_another_process_holds_the_lock(sb, config, tmp_path):
    assert run_once(config).code == 0
    with SnapshotStore.open(tmp_path / "state"):
        result = cli("--config", str(config), "status", "--json")
    assert result.code == 0 and json.loads(result.stdout)["initialized"] is True


def test_retry_requeues_a_failure_directly_and_through_a_running_daemon(sb, config, tmp_path):
    meeting_id, booking_id = refused_setup(sb, config)
    # The colleague's appointment moves away: the slot is free now.
    other = [b for b in sb.world.appointments if b != booking_id][0]
    sb.bookings_reschedule(other, NOW + dt.timedelta(days=9))
    retried = cli("--config", str(config), "retry", meeting_id)
    assert retried.code == 0 and "re-queued 1" in retried.stdout
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=5)

    # With the lock held (a daemon running), the request is handed over in a file.
    sb.crm_move(meeting_id, sb.meeting(sb.meeting_for_booking(other))["Start_DateTime"])
    assert run_once(config).code == 1
    sb.bookings_reschedule(other, NOW + dt.timedelta(days=11))
    with SnapshotStore.open(tmp_path / "state"):
        queued = cli("--config", str(config), "retry")
    assert queued.code == 0 and "queued" in queued.stdout
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=9)


def test_version_and_help_teach():
    assert cli("--version").stdout.startswith("bookings-sync ")
    top = cli("--help").stdout
    assert "exit codes:" in top and "--run-once" in top and "examples:" in top
    for command in ("status", "check", "retry", "sandbox"):
        text = cli(command, "--help").stdout
        assert "example" in text, command


def test_the_sandbox_command_prints_a_config_block_and_serves_until_ctrl_c(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import tomllib

    import requests

    proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "sandbox", "--port", "0",
                             "--seed", "3"], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(line.startswith("refresh_token") for line in lines):
            lines.append(proc.stdout.readline())
        block = tomllib.loads("".join(l for l in lines if not l.startswith("#")))["zoho"]
        token = requests.post(f"{block['accounts_url']}/oauth/v2/token", data={
            "grant_type": "refresh_token", "client_id": block["client_id"],
            "client_secret": block["client_secret"], "refresh_token": block["refresh_token"]},
            timeout=5).json()["access_token"]
        listed = requests.get(f"{block['api_url']}/crm/v8/Events", params={"fields": "id,BookingId"},
                              headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=5)
        assert len(listed.json()["data"]) == 3
        config = tmp_path / "sync.toml"
        config.write_text("".join(l for l in lines if not l.startswith("#"))
                          + f'[sync]\nstate_dir = "{tmp_path / "state"}"\n')
        assert cli("--config", str(config), "check").code == 0
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
