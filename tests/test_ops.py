"""Operator commands against the sandbox, run as the console script would be: ``check`` (a new
setup's checklist), ``status`` (read-only, safe beside the daemon), ``retry`` (directly, or handed
to a running daemon), ``--version`` and ``--help``."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tomllib

import pytest
import requests

from bookings_sync.store import SnapshotStore

from e2e import NOW, cli, run_once, write_config
from bookings_sync.sandbox import wait_for
from service_proc import Daemon



@pytest.fixture
def config(sb, tmp_path):
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml")


def status_json(config) -> dict:
    result = cli("--config", str(config), "status", "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


# -- check ----------------------------------------------------------------------------------

def test_check_on_a_healthy_setup_is_all_ticks(sb, config):
    result = cli("--config", str(config), "check")
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 4 and all(line.startswith("✓") for line in lines)
    assert "booking_id_field = 'BookingId' exists" in result.stdout
    # At most one token request, one CRM call and one Bookings call; no state written.
    assert sb.calls["crm.fields"] == 1 and sb.calls["bookings.getappointment"] == 1
    assert sb.calls["accounts.token"] <= 1
    assert not (config.parent / "state" / "state.json").exists()


def test_check_names_the_likely_cause_of_a_wrong_secret(sb, config):
    # A daemon ran with the right secret: its token cache holds a valid token. check must not
    # lean on it — the new, wrong secret has to show now, not in an hour.
    assert run_once(config).code == 0
    config.write_text(config.read_text().replace(sb.credentials["client_secret"], "not-it-at-all"))
    result = cli("--config", str(config), "check")
    assert result.code != 0
    assert "✓ configuration" in result.stdout
    assert "✗ token refresh" in result.stdout and "invalid_client" in result.stdout
    # The hint names the data center the config says, the usual culprit.
    assert "another data center than 'com'" in result.stdout
    assert "not-it-at-all" not in result.stdout + result.stderr
    assert sb.calls["crm.fields"] == 0          # no point asking CRM without a token


def test_check_names_a_missing_booking_id_field_and_suggests_one(sb, config):
    config.write_text(config.read_text().replace('booking_id_field = "BookingId"',
                                                 'booking_id_field = "BookingID"'))
    result = cli("--config", str(config), "check")
    assert result.code == 1
    assert "✗ [crm] booking_id_field = 'BookingID' is not a Meetings field" in result.stdout
    assert "did you mean 'BookingId'" in result.stdout
    assert "✓ Bookings API answers" in result.stdout     # the other checks still ran


def test_check_reads_the_service_credentials_as_the_readme_says(sb, tmp_path):
    """Secrets in /etc/bookings-sync/{client_secret,refresh_token} for LoadCredential=; from a
    shell, CREDENTIALS_DIRECTORY=/etc/bookings-sync points check at the same files."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("client_secret", "refresh_token"):
        (etc / name).write_text(sb.credentials[name] + "\n")
        os.chmod(etc / name, 0o600)
    config = write_config(sb, tmp_path / "state", etc / "bookings-sync.toml")
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith(("client_secret", "refresh_token"))))
    missing = cli("--config", str(config), "check")
    assert missing.code == 2 and "client_secret" in missing.stdout
    result = cli("--config", str(config), "check", env={"CREDENTIALS_DIRECTORY": str(etc)})
    assert result.code == 0, result.stdout


def test_check_marks_a_secret_file_others_can_read(sb, tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_text(sb.credentials["client_secret"] + "\n")
    os.chmod(secret, 0o644)
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    config.write_text(config.read_text().replace(
        f'client_secret = "{sb.credentials["client_secret"]}"',
        f'client_secret_file = "{secret}"'))
    result = cli("--config", str(config), "check")
    assert result.code == 1, result.stdout
    assert f"client_secret_file: {secret} has mode 0644" in result.stdout
    assert f"hint: run: chmod 600 {secret}" in result.stdout
    assert "✓ token refresh works" in result.stdout          # it still works
    os.chmod(secret, 0o600)
    assert cli("--config", str(config), "check").code == 0


# -- status ---------------------------------------------------------------------------------

def refused_setup(sb, config):
    """Two appointments of one staff member; CRM moves the second onto the first: refused."""
    _, first = sb.book(start=NOW + dt.timedelta(days=5), time_zone="UTC", staff_id="ana")
    meeting_id, booking_id = sb.book(start=NOW + dt.timedelta(days=5, hours=3), time_zone="UTC",
                                     staff_id="ana")
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, NOW + dt.timedelta(days=5))
    assert run_once(config).code == 1
    return meeting_id, booking_id, first


def test_status_before_the_first_cycle(config):
    result = cli("--config", str(config), "status")
    assert result.code == 0 and "no state yet" in result.stdout
    assert status_json(config)["initialized"] is False


def test_status_shows_a_recorded_failure_with_its_reason(sb, config):
    meeting_id, booking_id, _ = refused_setup(sb, config)
    text = cli("--config", str(config), "status")
    assert text.code == 0
    assert "failures:         1" in text.stdout
    assert f"meeting {meeting_id} booking {booking_id}: reschedule refused" in text.stdout
    assert "Slot not available" in text.stdout
    assert "last cycle:" in text.stdout and "action-failed" in text.stdout
    assert "pending actions:  0" in text.stdout
    data = status_json(config)
    [failure] = data["failures"]
    assert failure["meeting_id"] == meeting_id and failure["booking_id"] == booking_id
    assert "Slot not available" in failure["reason"] and failure["result"] == "refused"
    assert failure["age_seconds"] >= 0
    assert data["meetings_tracked"] == 2 and data["pending"] == []
    assert data["last_cycle"]["outcome"] == "action-failed" and data["last_cycle"]["refused"] == 1


def test_status_reads_while_another_process_holds_the_lock(sb, config, tmp_path):
    assert run_once(config).code == 0
    before = (tmp_path / "state" / "state.json").read_bytes()
    with SnapshotStore.open(tmp_path / "state"):
        result = cli("--config", str(config), "status", "--json")
        assert run_once(config).code == 4          # a writer would be refused
    assert result.code == 0 and json.loads(result.stdout)["initialized"] is True
    assert (tmp_path / "state" / "state.json").read_bytes() == before


def test_status_and_retry_need_no_secrets(sb, config):
    """An operator's shell has no $CREDENTIALS_DIRECTORY: status and retry read only the state."""
    assert run_once(config).code == 0
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith(("client_secret", "refresh_token"))))
    assert cli("--config", str(config), "check").code == 2      # check does need them
    status = cli("--config", str(config), "status")
    assert status.code == 0 and "meetings tracked: 0" in status.stdout
    assert cli("--config", str(config), "retry").code == 0


def test_status_says_so_when_it_cannot_read_the_state(sb, config, tmp_path):
    assert run_once(config).code == 0
    (tmp_path / "state" / "state.json").write_text("{not json")
    result = cli("--config", str(config), "status")
    assert result.code == 2
    assert result.stderr.startswith("bookings-sync: cannot read the state")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", [b"{half", b"[1, 2]", b"\xff\xfe", b""])
def test_status_shrugs_off_a_damaged_last_cycle_file(sb, config, tmp_path, damage):
    assert run_once(config).code == 0
    (tmp_path / "state" / "last-cycle.json").write_bytes(damage)
    result = cli("--config", str(config), "status")
    assert result.code == 0 and "last cycle:       none recorded" in result.stdout
    assert "Traceback" not in result.stderr


# -- retry ----------------------------------------------------------------------------------

def test_retry_without_any_state_creates_nothing(config, tmp_path):
    result = cli("--config", str(config), "retry")
    assert result.code == 1 and "nothing to retry" in result.stderr
    assert not (tmp_path / "state" / "lock").exists()
    assert not (tmp_path / "state" / "state.json").exists()


def test_retry_requeues_a_failure_and_the_next_cycle_applies_it(sb, config):
    meeting_id, booking_id, first = refused_setup(sb, config)
    sb.bookings_reschedule(first, NOW + dt.timedelta(days=9))      # the slot is free now
    unknown = cli("--config", str(config), "retry", "4876876000000000001")
    assert unknown.code == 1 and "no failure or waiting action" in unknown.stdout
    retried = cli("--config", str(config), "retry", meeting_id)
    assert retried.code == 0 and "re-queued 1" in retried.stdout
    data = status_json(config)
    assert data["failures"] == [] and [a["meeting_id"] for a in data["pending"]] == [meeting_id]
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=5)
    assert status_json(config)["pending"] == []


def test_retry_hands_the_request_to_a_running_daemon(sb, config, tmp_path):
    """The daemon holds the lock: retry leaves a request file in the state directory, which the
    daemon's next cycle applies."""
    meeting_id, booking_id, first = refused_setup(sb, config)
    with Daemon(config, tmp_path / "daemon.log") as daemon:
        assert wait_for(lambda: daemon.events("cycle.end"), 10)
        assert status_json(config)["failures"][0]["meeting_id"] == meeting_id   # beside it
        sb.bookings_reschedule(first, NOW + dt.timedelta(days=9))
        calls = sb.calls["bookings.rescheduleappointment"]
        queued = cli("--config", str(config), "retry")
        assert queued.code == 0 and "retry request queued" in queued.stdout, queued.stderr
        assert wait_for(lambda: sb.calls["bookings.rescheduleappointment"] > calls, 10)
        assert wait_for(lambda: status_json(config)["failures"] == [], 5)
        assert daemon.stop() == 0
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=5)
    data = status_json(config)
    assert data["pending"] == [] and data["retry_requests_waiting"] == 0
    assert list((tmp_path / "state").glob("retry-request-*")) == []
    assert daemon.events("retry.requested")


def test_a_queued_retry_for_an_unknown_meeting_is_refused_at_once(sb, config, tmp_path):
    assert run_once(config).code == 0
    with SnapshotStore.open(tmp_path / "state"):
        result = cli("--config", str(config), "retry", "4876876000000000001")
    assert result.code == 1 and "no failure or waiting action" in result.stdout
    assert list((tmp_path / "state").glob("retry-request-*")) == []


def test_a_damaged_retry_request_is_dropped_not_read_as_retry_all(sb, config, tmp_path):
    meeting_id, _, _ = refused_setup(sb, config)
    (tmp_path / "state" / "retry-request-damaged.json").write_text('{"meeting_ids": ')
    result = run_once(config)
    [dropped] = result.event("retry.request_not_applied")
    assert dropped["level"] == "error" and "damaged" in dropped["file"]
    assert list((tmp_path / "state").glob("retry-request-*")) == []
    assert status_json(config)["failures"][0]["meeting_id"] == meeting_id   # still a failure


# -- the CLI surface ------------------------------------------------------------------------

def test_version_and_help_teach():
    from bookings_sync import __version__

    assert cli("--version").stdout.strip() == f"bookings-sync {__version__}"
    top = cli("--help").stdout
    assert "exit codes:" in top and "--run-once" in top and "examples:" in top
    for command in ("status", "check", "retry", "sandbox"):
        text = cli(command, "--help").stdout
        assert "example" in text and "bookings-sync" in text.split("example", 1)[1], command


def test_the_sandbox_command_prints_a_config_block_and_serves_until_ctrl_c(tmp_path):
    # SIGINT back to default in the child: a runner that starts us as a background job of a
    # non-interactive shell ignores SIGINT, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "sandbox", "--port", "0",
                             "--seed", "3"], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
