"""``bookings-sync check`` — the checklist a new user runs first.

Each line is ✓ or ✗ with a hint that names the likely cause. It stops at the first failure that
makes the rest meaningless (no token → no API checks). It costs one token request, one CRM call
and one Bookings call, and never touches the snapshot or the token cache, so it is safe beside a
running daemon. The token request is real even when the cache holds a valid token: a client
secret changed since that token was minted must show here, not an hour later in the daemon.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from bookings_sync import config as config_mod
from bookings_sync.exitcodes import ExitCode
from bookings_sync.logs import printable
from bookings_sync.runtime import connect_zoho
from bookings_sync.zoho.connection import ZohoConnection
from bookings_sync.zoho.errors import BookingsRefused, ZohoAuthError, ZohoError

# A booking id that cannot exist: Bookings answers it with a business refusal, which proves the
# API, the token and the scope work without touching a real appointment.
PROBE_BOOKING_ID = "#bookings-sync-check"


class Checklist:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.failed = 0

    def ok(self, text: str) -> None:
        print(f"✓ {printable(text)}", file=self.out)

    def fail(self, text: str, hint: str) -> None:
        self.failed += 1
        print(f"✗ {printable(text)}\n    hint: {printable(hint)}", file=self.out)


def check_command(path: Path, out=sys.stdout) -> int:
    checks = Checklist(out)
    try:
        config = config_mod.load(path)
    except config_mod.ConfigError as exc:
        checks.fail(f"configuration: {exc}",
                    "fix the key named above; config/bookings-sync.example.toml documents each one")
        return ExitCode.CONFIG
    checks.ok(f"configuration {path} is valid (data center {config.zoho.data_center}; state dir "
              f"{config.sync.state_dir} writable)")
    for warning in config.warnings:          # works, but should be fixed: e.g. a secret file
        checks.fail(f"{warning.where}: {warning.problem}", f"run: {warning.fix}")
    with connect_zoho(config, cache_tokens=False) as zoho:
        stop = check_token(checks, config, zoho)
        if stop is not None:
            return stop
        check_crm(checks, config, zoho)
        check_bookings(checks, config, zoho)
    return ExitCode.OK if not checks.failed else ExitCode.ACTION_FAILED


def check_token(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> int | None:
    """A real token refresh. Returns the exit code to stop with, or None to go on."""
    where, data_center = config.zoho.accounts_url, config.zoho.data_center
    try:
        zoho.tokens.token()
    except ZohoAuthError as exc:
        hint = {
            "invalid_client": f"client_id/client_secret are wrong, or the client belongs to "
                              f"another data center than {data_center!r} "
                              f"(try the data center where you created it)",
            "invalid_code": "the refresh token is wrong, revoked or for another client: "
                            "generate a new one in the API console",
        }.get(exc.code, "see the message above")
        checks.fail(f"token refresh at {where}: {exc}", hint)
        return ExitCode.ACTION_FAILED
    except ZohoError as exc:
        checks.fail(f"token refresh at {where}: {exc}",
                    "is the host reachable from here (DNS, proxy, firewall)?")
        return ExitCode.ZOHO
    checks.ok(f"token refresh works: {where} answered for data center {data_center}")
    return None


def check_crm(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    """The Meetings module is readable and the configured fields exist on it."""
    try:
        fields = zoho.crm.fields()
    except ZohoError as exc:
        checks.fail(f"CRM Meetings (Events) at {config.zoho.api_url}: {exc}",
                    "the token needs scopes ZohoCRM.modules.events.ALL and "
                    "ZohoCRM.settings.fields.READ")
        return
    names = {f.get("api_name") for f in fields}
    checks.ok(f"CRM Meetings (Events) readable at {config.zoho.api_url}: {len(fields)} fields")
    for key, field in (("booking_id_field", config.crm.booking_id_field),
                       ("status_field", config.crm.status_field)):
        if not field:
            continue
        if field in names:
            checks.ok(f"[crm] {key} = {field!r} exists on Meetings")
            continue
        close = difflib.get_close_matches(field, [n for n in names if n], n=3)
        checks.fail(f"[crm] {key} = {field!r} is not a Meetings field",
                    f"did you mean {', '.join(map(repr, close))}?" if close else
                    "Setup → Modules and Fields → Meetings lists the API names")


def check_bookings(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    try:
        zoho.bookings.get(PROBE_BOOKING_ID)
        checks.ok("Bookings API answers")
    except BookingsRefused:
        checks.ok("Bookings API answers (probe id correctly unknown)")
    except ZohoError as exc:
        checks.fail(f"Bookings API at {config.zoho.api_url}: {exc}",
                    "the token needs scope zohobookings.data.CREATE, and the Bookings org must "
                    "be in the same data center")
