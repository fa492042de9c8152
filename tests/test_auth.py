"""``bookings-sync auth``: Zoho's Self Client flow end to end against the sandbox — the console
script in a subprocess, the grant code on its stdin, the sandbox's Accounts minting the refresh
token over HTTP — and ``auth --print-scopes``, the scope string a newcomer pastes into the API
console.

What a user cares about: the token lands in the configured file, mode 0600, and the daemon runs
with it; no secret reaches the terminal or a log; each way Zoho refuses a code gets one line
naming the likely cause, and nothing is written then.
"""

from __future__ import annotations

import os
import pty
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest

from bookings_sync import scopes
from bookings_sync.config import BookConfig, SyncConfig
from bookings_sync.engine.model import OnBooked, OnRefused
from e2e import child_env, cli, future, run_once, write_config

DEFAULT_SCOPES = "ZohoCRM.modules.events.READ,ZohoCRM.settings.fields.READ,zohobookings.data.CREATE"


def auth_config(sb, tmp_path, *, sync: str = "", token_file: bool = True):
    """A config for ``sb`` whose refresh token is to come from ``auth`` (none yet)."""
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml", sync=sync)
    target = f'refresh_token_file = "{tmp_path / "refresh_token"}"' if token_file else ""
    config.write_text(config.read_text().replace(
        f'refresh_token = "{sb.credentials["refresh_token"]}"', target))
    return config


def auth(config, code: str, *extra: str):
    return cli("--config", str(config), "auth", *extra, stdin=code + "\n")


def print_scopes(config=None, *extra: str) -> str:
    args = ("--config", str(config)) if config else ()
    result = cli(*args, "auth", "--print-scopes", *extra)
    assert result.code == 0, result.stderr
    return result.stdout


def secrets_of(sb, *extra: str) -> list[str]:
    """Every credential the sandbox knows: client secret, refresh tokens, access tokens."""
    world = sb.world
    return [sb.credentials["client_secret"], *world.refresh_scopes, *world.tokens, *extra]


# -- the scopes to grant ----------------------------------------------------------------------

def test_print_scopes_without_a_config_is_the_default_minimal_set():
    assert print_scopes().strip() == DEFAULT_SCOPES


def test_print_scopes_follows_the_configured_features_and_sends_nothing(sb, tmp_path):
    config = auth_config(sb, tmp_path, sync='on_refused = "revert"\non_delete = "ignore"')
    line = print_scopes(config).strip()
    assert line == ("ZohoCRM.modules.events.READ,ZohoCRM.modules.events.UPDATE,"
                    "ZohoCRM.settings.fields.READ,zohobookings.data.CREATE")
    assert sb.request_log == []                    # no network, not even a token request
    sb.issue_grant_code(line)                      # the API console's format: the sandbox takes it


def test_explain_gives_each_scope_a_reason_and_a_source():
    lines = print_scopes(None, "--explain").splitlines()
    assert lines[0] == DEFAULT_SCOPES
    for name in DEFAULT_SCOPES.split(","):
        [row] = [line for line in lines[1:] if line.strip().startswith(name)]
        assert len(row.split(name, 1)[1].strip()) > 20            # a reason, not just the name
    assert sum("source: " in line for line in lines) == 3
    assert "deleted Meetings" in "\n".join(lines)                  # on_delete = "cancel" default


def test_booking_from_crm_adds_its_scopes_once_its_trigger_field_is_set():
    def names(book):
        return [s.name for s in scopes.required(SimpleNamespace(sync=SyncConfig(), book=book))]
    assert names(BookConfig()) == DEFAULT_SCOPES.split(",")
    added = set(names(BookConfig(trigger_field="Book_In_Bookings"))) - set(DEFAULT_SCOPES
                                                                           .split(","))
    assert added == {"ZohoCRM.modules.contacts.READ", "ZohoCRM.modules.leads.READ",
                     "ZohoCRM.modules.events.UPDATE", "ZohoCRM.modules.events.DELETE"}
    kept = BookConfig(trigger_field="Book_In_Bookings", on_booked=OnBooked.KEEP)
    assert "ZohoCRM.modules.events.DELETE" not in names(kept)     # nothing to delete
    revert = SimpleNamespace(sync=SyncConfig(on_refused=OnRefused.REVERT), book=kept)
    listed = [s.name for s in scopes.required(revert)]
    assert listed.count("ZohoCRM.modules.events.UPDATE") == 1       # needed twice, listed once


@pytest.mark.parametrize("granted,needed,held", [
    ({"ZohoCRM.modules.events.UPDATE"}, "ZohoCRM.modules.events.UPDATE", True),
    ({"zohocrm.Modules.Events.all"}, "ZohoCRM.modules.events.UPDATE", True),
    ({"ZohoCRM.modules.ALL"}, "ZohoCRM.modules.events.UPDATE", True),
    ({"ZohoCRM.modules.UPDATE"}, "ZohoCRM.modules.events.UPDATE", True),
    ({"ZohoCRM.modules.events.WRITE"}, "ZohoCRM.modules.events.UPDATE", True),
    ({"ZohoCRM.modules.events.READ"}, "ZohoCRM.modules.events.UPDATE", False),
    ({"ZohoCRM.modules.contacts.ALL"}, "ZohoCRM.modules.events.UPDATE", False),
    ({"ZohoCRM.modules.events.WRITE"}, "ZohoCRM.modules.events.READ", False),
    ({"ZohoCRM.settings.ALL"}, "ZohoCRM.settings.fields.READ", True),
    ({"ZohoCRM.modules.ALL"}, "ZohoCRM.settings.fields.READ", False),
])
def test_a_granted_scope_list_covers_what_zoho_documents_as_wider(granted, needed, held):
    assert scopes.covers(granted, needed) is held


# -- the Self Client flow, end to end ---------------------------------------------------------

def test_a_grant_code_on_stdin_becomes_a_0600_refresh_token_the_daemon_runs_with(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    meeting_id, booking_id = sb.book(start=future(3), time_zone="UTC")
    code = sb.issue_grant_code(print_scopes(config).strip())
    log_file = tmp_path / "auth.log"
    result = auth(config, code, "--log-file", str(log_file))
    assert result.code == 0, result.stdout + result.stderr

    token_file = tmp_path / "refresh_token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    refresh_token = token_file.read_text().strip()
    assert sb.world.refresh_scopes[refresh_token] == frozenset(DEFAULT_SCOPES.split(","))
    # The console named, then the scopes to paste, then check's lines with the new token: all ✓.
    assert "https://api-console.zoho.com" in result.stdout and DEFAULT_SCOPES in result.stdout
    ticks = [line for line in result.stdout.splitlines() if line[:1] in "✓✗!"]
    assert len(ticks) >= 7 and all(line.startswith("✓") for line in ticks), result.stdout
    for secret in secrets_of(sb, code):
        assert secret not in result.stdout + result.stderr + log_file.read_text()
        assert secret not in repr(sb.request_log)           # not even in the sandbox's log
    [exchange] = [e for e in sb.request_log if e["endpoint"] == "accounts.token"
                  and e["form"].get("grant_type") == "authorization_code"]
    assert exchange["method"] == "POST" and exchange["query"] == {}     # in the body, not URL

    # The daemon runs with it: a baseline, then a CRM move reaches Bookings.
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(3, hour=14))
    moved = run_once(config)
    assert moved.code == 0, moved.stderr[-2000:]
    assert sb.appointment(booking_id)["start"] == future(3, hour=14)
    assert refresh_token not in moved.stderr


def test_on_a_terminal_auth_prompts_for_the_code(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    code = sb.issue_grant_code(DEFAULT_SCOPES)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                             "auth"], stdin=secondary, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), text=True)
    os.close(secondary)
    os.write(primary, (code + "\n").encode())
    stdout, stderr = proc.communicate(timeout=60)
    os.close(primary)
    assert proc.returncode == 0, stdout + stderr
    assert "grant code: " in stdout and (tmp_path / "refresh_token").exists()


def test_auth_writes_to_output_and_says_the_config_reads_another_file(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    elsewhere = tmp_path / "creds" / "refresh_token"
    elsewhere.parent.mkdir()
    result = auth(config, sb.issue_grant_code(DEFAULT_SCOPES), "--output", str(elsewhere))
    assert result.code == 0, result.stdout + result.stderr
    assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o600
    assert not (tmp_path / "refresh_token").exists()
    assert f"does not read {elsewhere}" in result.stdout


def test_the_service_layout_of_the_readme_works_with_output(sb, tmp_path):
    """Secrets as systemd credentials in /etc/bookings-sync (no secret keys in the config):
    ``CREDENTIALS_DIRECTORY=… auth --output …/refresh_token``, then ``check`` reads it there."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "client_secret").write_text(sb.credentials["client_secret"] + "\n")
    os.chmod(etc / "client_secret", 0o600)
    config = write_config(sb, tmp_path / "state", etc / "bookings-sync.toml")
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith(("client_secret", "refresh_token"))))
    env = {"CREDENTIALS_DIRECTORY": str(etc)}
    result = cli("--config", str(config), "auth", "--output", str(etc / "refresh_token"),
                 env=env, stdin=sb.issue_grant_code(DEFAULT_SCOPES) + "\n")
    assert result.code == 0, result.stdout + result.stderr
    assert "does not read" not in result.stdout
    assert cli("--config", str(config), "check", env=env).code == 0


def test_a_second_auth_replaces_the_token_file_atomically(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    token_file = tmp_path / "refresh_token"
    token_file.write_text("1000.old-token-that-was-revoked\n")
    os.chmod(token_file, 0o644)
    assert auth(config, sb.issue_grant_code(DEFAULT_SCOPES)).code == 0
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert token_file.read_text().strip() in sb.world.refresh_scopes
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".probe-" in p] == []


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def frozen(make_sandbox, clock):
    return make_sandbox(clock=clock)


@pytest.mark.parametrize("how", ["expired", "already used", "another data center"])
def test_a_refused_code_is_one_line_with_its_cause_exit_3_and_nothing_written(frozen, clock,
                                                                              tmp_path, how):
    sb = frozen
    config = auth_config(sb, tmp_path)
    code = sb.issue_grant_code(DEFAULT_SCOPES, minutes=3,
                               data_center="eu" if how == "another data center" else None)
    if how == "expired":
        clock.advance(3 * 60 + 1)
    if how == "already used":
        assert auth(config, code, "--output", str(tmp_path / "first")).code == 0
    result = auth(config, code)
    assert result.code == 3
    line = one_line(result)
    assert "invalid_code" in line
    assert {"expired": "expired", "already used": "already used",
            "another data center": "another data center's API console"}[how] in line
    # It names the console of the configured data center, where a new code must come from.
    assert "'com'" in line and "https://api-console.zoho.com" in line
    assert not (tmp_path / "refresh_token").exists()
    assert code not in result.stdout + result.stderr


def test_a_wrong_client_secret_is_invalid_client_naming_the_data_center(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    config.write_text(config.read_text().replace(sb.credentials["client_secret"],
                                                 "a-wrong-secret-123456"))
    code = sb.issue_grant_code(DEFAULT_SCOPES)
    result = auth(config, code)
    assert result.code == 3
    line = one_line(result)
    assert "invalid_client" in line and "another data center than 'com'" in line
    assert "a-wrong-secret-123456" not in result.stdout + result.stderr
    assert sb.world.grant_codes.get(code)            # not spent: it can be used once fixed


def test_an_api_domain_in_another_data_center_is_named_and_nothing_is_written(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    sb.set_api_domain("https://www.zohoapis.eu")
    result = auth(config, sb.issue_grant_code(DEFAULT_SCOPES))
    assert result.code == 3
    line = one_line(result)
    assert "data center 'eu'" in line and "not 'com'" in line
    assert 'data_center = "eu"' in line and "https://api-console.zoho.eu" in line
    assert not (tmp_path / "refresh_token").exists()


def test_without_a_file_to_write_auth_says_so_before_asking_for_a_code(sb, tmp_path):
    config = auth_config(sb, tmp_path, token_file=False)
    result = auth(config, sb.issue_grant_code(DEFAULT_SCOPES))
    assert result.code == 2
    assert "refresh_token_file" in one_line(result) and "--output" in result.stderr
    assert sb.request_log == []                       # the code was not spent


def test_an_unwritable_target_stops_before_the_code_is_spent(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    code = sb.issue_grant_code(DEFAULT_SCOPES)
    result = auth(config, code, "--output", str(tmp_path / "no" / "such" / "dir" / "token"))
    assert result.code == 2
    assert "cannot write the refresh token" in one_line(result)
    assert sb.request_log == [] and sb.world.grant_codes.get(code)


@pytest.mark.parametrize("stdin", ["", "   \n", "two words\n", "\x1b[31mcode\n"])
def test_no_code_or_not_a_code_on_stdin_is_one_line_exit_2(sb, tmp_path, stdin):
    config = auth_config(sb, tmp_path)
    result = cli("--config", str(config), "auth", stdin=stdin)
    assert result.code == 2
    assert "code" in one_line(result) and "\x1b" not in result.stderr
    assert sb.request_log == []


def test_the_code_is_never_taken_from_the_command_line(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    result = cli("--config", str(config), "auth", sb.issue_grant_code(DEFAULT_SCOPES))
    assert result.code == 2 and "unrecognized arguments" in result.stderr
    assert sb.request_log == []


def test_a_code_with_too_few_scopes_saves_the_token_and_check_names_whats_missing(sb, tmp_path):
    config = auth_config(sb, tmp_path)
    code = sb.issue_grant_code("ZohoCRM.modules.events.READ,ZohoCRM.settings.fields.READ")
    result = auth(config, code)
    assert result.code == 1
    assert (tmp_path / "refresh_token").exists()
    assert "✗ Bookings API" in result.stdout and "lacks scope zohobookings.data.CREATE" in \
        result.stdout
    assert f"bookings-sync auth --config {config}" in result.stdout
