"""``check`` proves every scope the configuration needs with a real, read-only call — so a token
without the Events scope no longer passes ``check`` and fails at the first cycle — and names the
missing scope and the command that fixes it. The console script against the sandbox, whose
tokens carry scopes and whose CRM and Bookings refuse calls outside them as Zoho does.

Also here: Bookings' write calls travel as multipart/form-data, as Zoho documents them (read
from the sandbox's request log, which keeps each request's headers).
"""

from __future__ import annotations

import io

import pytest

from bookings_sync import checks
from bookings_sync.config import load
from e2e import cli, future, run_once, write_config

EVENTS = "ZohoCRM.modules.events.READ"
FIELDS = "ZohoCRM.settings.fields.READ"
BOOKINGS = "zohobookings.data.CREATE"
UPDATE = "ZohoCRM.modules.events.UPDATE"


def config_with(sb, tmp_path, granted, sync: str = ""):
    """A config whose refresh token carries only ``granted``."""
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml", sync=sync)
    narrow = sb.credentials_with(granted)["refresh_token"]
    config.write_text(config.read_text().replace(sb.credentials["refresh_token"], narrow))
    return config


def check(config):
    return cli("--config", str(config), "check")


def failures(result) -> list[str]:
    """Each ✗ line with its hint, as one string."""
    lines = result.stdout.splitlines()
    return [f"{line} {lines[i + 1].strip()}" for i, line in enumerate(lines)
            if line.startswith("✗")]


def test_the_minimal_scopes_pass_with_every_line_a_tick_and_cost_a_few_reads(sb, tmp_path):
    config = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS])
    result = check(config)
    assert result.code == 0, result.stdout
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("✓") for line in lines), result.stdout
    assert sb.calls["crm.list"] == 1 and sb.calls["crm.deleted"] == 1
    assert sb.calls["crm.fields"] == 1 and sb.calls["bookings.getappointment"] == 1
    # One record asked for, never a write.
    [listed] = [e for e in sb.request_log if e["endpoint"] == "crm.list"]
    assert listed["query"]["per_page"] == "1"
    assert not [e for e in sb.request_log if e["method"] in ("PUT", "POST", "DELETE")
                and e["endpoint"] != "accounts.token"]


def test_a_token_without_the_events_scope_fails_check_naming_it(sb, tmp_path):
    config = config_with(sb, tmp_path, [FIELDS, BOOKINGS])
    result = check(config)
    assert result.code == 1
    failed = failures(result)
    # The list and the deleted list both need it (Zoho has no separate deleted-records scope).
    assert len(failed) == 2 and all("OAUTH_SCOPE_MISMATCH" in line for line in failed)
    assert all(f"the token lacks scope {EVENTS}" in line for line in failed)
    assert all(f"bookings-sync auth --config {config}" in line for line in failed)
    assert "✓ CRM Meetings fields" in result.stdout and "✓ Bookings API" in result.stdout


def test_the_deleted_list_is_proven_apart_and_its_refusal_named(sb, tmp_path):
    """A token that lists Meetings but is refused the deleted list (NO_PERMISSION: the profile
    of the user who made the code) fails on that line alone."""
    config = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS])
    sb.inject("/Events/deleted", "refuse", status=403, code="NO_PERMISSION",
              message="permission denied")
    result = check(config)
    assert result.code == 1
    [failed] = failures(result)
    assert "deleted-Meetings list" in failed and "NO_PERMISSION" in failed
    assert f"lacks scope {EVENTS}" in failed and "Profiles" in failed
    assert "✓ CRM Meetings list" in result.stdout


def test_with_deletions_ignored_the_deleted_list_is_not_asked(sb, tmp_path):
    config = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS], sync='on_delete = "ignore"')
    result = check(config)
    assert result.code == 0, result.stdout
    assert sb.calls["crm.deleted"] == 0 and "deleted" not in result.stdout


@pytest.mark.parametrize("shape", ["json", "html"])
def test_a_token_without_the_bookings_scope_fails_check_naming_it(make_sandbox, tmp_path, shape):
    sb = make_sandbox(bookings_scope_refusal=shape)
    config = config_with(sb, tmp_path, [EVENTS, FIELDS])
    result = check(config)
    assert result.code == 1
    [failed] = failures(result)
    assert failed.startswith("✗ Bookings API") and f"the token lacks scope {BOOKINGS}" in failed
    assert "bookings-sync auth --config" in failed


def test_a_token_without_the_fields_scope_fails_check_naming_it(sb, tmp_path):
    config = config_with(sb, tmp_path, [EVENTS, BOOKINGS])
    [failed] = failures(check(config))
    assert failed.startswith("✗ CRM Meetings fields") and f"lacks scope {FIELDS}" in failed


def test_revert_needs_update_which_check_judges_from_the_token_reply(sb, tmp_path):
    revert = 'on_refused = "revert"'
    granted = config_with(sb, tmp_path, [EVENTS, UPDATE, FIELDS, BOOKINGS], sync=revert)
    result = check(granted)
    assert result.code == 0, result.stdout
    assert f"✓ {UPDATE}" in result.stdout and "sends no write" in result.stdout
    assert not [e for e in sb.request_log if e["method"] == "PUT"]
    lacking = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS], sync=revert)
    [failed] = failures(check(lacking))
    assert failed.startswith(f"✗ {UPDATE}") and "missing" in failed
    assert "bookings-sync auth --config" in failed


def test_a_write_scope_cannot_be_proven_when_zoho_lists_no_scopes(sb, tmp_path):
    """Zoho's refresh reply may omit ``scope``: then a note says so, and fails nothing."""
    config = load(write_config(sb, tmp_path / "state", tmp_path / "sync.toml",
                               sync='on_refused = "revert"'))
    out = io.StringIO()
    checklist = checks.Checklist(out)
    checks.check_writes(checklist, config, None)
    assert checklist.failed == 0
    assert out.getvalue().startswith(f"! {UPDATE}") and "cannot be proven without a write" in \
        out.getvalue()


def test_an_api_domain_in_another_data_center_fails_check_naming_it(sb, tmp_path):
    config = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS])
    sb.set_api_domain("https://www.zohoapis.com.au")
    [failed] = failures(check(config))
    assert "data center 'com.au'" in failed and "not 'com'" in failed
    assert "https://api-console.zoho.com.au" in failed


def test_the_uk_data_center_is_accepted_with_a_note(sb, tmp_path):
    config = config_with(sb, tmp_path, [EVENTS, FIELDS, BOOKINGS])
    config.write_text(config.read_text().replace('data_center = "com"', 'data_center = "uk"'))
    result = check(config)
    assert result.code == 0, result.stdout
    [note] = [line for line in result.stdout.splitlines() if line.startswith("!")]
    assert "'uk'" in note and "neither CRM nor Bookings documents it" in note


# -- Bookings wire fidelity -------------------------------------------------------------------

def test_bookings_write_calls_are_multipart_form_data_on_the_wire(sb, tmp_path):
    status = ('status_field = "Meeting_Status"\n[crm.status_map]\n"Cancelled" = "cancel"\n')
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml", crm=status)
    moved, moved_booking = sb.book(start=future(3), time_zone="UTC")
    cancelled, cancelled_booking = sb.book(start=future(4), time_zone="UTC")
    assert run_once(config).code == 0
    sb.crm_move(moved, future(3, hour=15))
    sb.crm_edit(cancelled, Meeting_Status="Cancelled")
    assert run_once(config).code == 0
    writes = [e for e in sb.request_log if e["endpoint"] in ("bookings.rescheduleappointment",
                                                             "bookings.updateappointment")]
    assert {e["endpoint"] for e in writes} == {"bookings.rescheduleappointment",
                                               "bookings.updateappointment"}
    for entry in writes:
        content_type = {k.lower(): v for k, v in entry["headers"].items()}["content-type"]
        assert content_type.startswith("multipart/form-data; boundary="), content_type
    assert {e["form"]["booking_id"] for e in writes} == {moved_booking, cancelled_booking}
