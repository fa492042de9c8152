"""``bookings-sync check`` — the checklist a new user runs first (and ``auth`` runs with the
token it just saved).

Each line is ✓ or ✗ with a hint that names the likely cause; a line starting ``!`` is a note that
fails nothing. It stops at the first failure that makes the rest meaningless (no token → no API
checks). Every scope the configuration needs (:func:`bookings_sync.scopes.required`) is proven by
a real, read-only call:

- ``ZohoCRM.modules.events.READ``: the Meetings list, one record (``per_page=1``), and — with
  ``on_delete = "cancel"`` — the deleted-Meetings list, one record;
- ``ZohoCRM.settings.fields.READ``: the Meetings field list, which also proves
  ``booking_id_field`` / ``status_field`` exist;
- ``zohobookings.data.CREATE``: ``getappointment`` of an id that cannot exist — Bookings'
  business refusal proves the API, the token and the scope without touching an appointment.

A scope only a write could prove (``ZohoCRM.modules.events.UPDATE`` for ``on_refused =
"revert"``) is judged from the ``scope`` list of Zoho's token reply: ✓ when it is granted, ✗ when
the list lacks it, a note "cannot be proven without a write" when the reply lists none. check
never writes. A refused call (``OAUTH_SCOPE_MISMATCH``, ``NO_PERMISSION``, Bookings' own scope
refusal or its 401 page) names the scope and the command that fixes it (``bookings-sync auth``).
The token reply's ``api_domain`` naming another data center than the configured one is a ✗ too.

It costs one token request, two or three CRM calls and one Bookings call, never touches the
snapshot or the token cache, so it is safe beside a running daemon. The token request is real
even when the cache holds a valid token: a client secret changed since that token was minted
must show here, not an hour later in the daemon.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bookings_sync import config as config_mod
from bookings_sync.engine.model import OnDelete
from bookings_sync.exitcodes import ExitCode
from bookings_sync.logs import printable
from bookings_sync.runtime import connect_zoho
from bookings_sync.scopes import BOOKINGS, EVENTS_READ, FIELDS_READ, covers, required
from bookings_sync.zoho.connection import ZohoConnection
from bookings_sync.zoho.datacenters import DATA_CENTERS, data_center_of
from bookings_sync.zoho.errors import BookingsRefused, ZohoApiError, ZohoAuthError, ZohoError

# A booking id that cannot exist: Bookings answers it with a business refusal, which proves the
# API, the token and the scope work without touching a real appointment.
PROBE_BOOKING_ID = "#bookings-sync-check"
# CRM's answers that mean "this token may not do that" (zoho-api.md, CRM "Possible Errors").
_SCOPE_CODES = ("OAUTH_SCOPE_MISMATCH", "NO_PERMISSION")
_WRITES = ("CREATE", "UPDATE", "DELETE")


class Checklist:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.failed = 0

    def ok(self, text: str) -> None:
        print(f"✓ {printable(text)}", file=self.out)

    def fail(self, text: str, hint: str) -> None:
        self.failed += 1
        print(f"✗ {printable(text)}\n    hint: {printable(hint)}", file=self.out)

    def note(self, text: str) -> None:
        print(f"! {printable(text)}", file=self.out)


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
    return check_account(checks, config)


def check_account(checks: Checklist, config: config_mod.Config) -> int:
    """Everything after the configuration: a real token refresh, then each scope the
    configuration needs. Returns the exit code."""
    note = DATA_CENTERS[config.zoho.data_center].note
    if note:
        checks.note(note)
    with connect_zoho(config, cache_tokens=False) as zoho:
        stop = check_token(checks, config, zoho)
        if stop is not None:
            return stop
        problem = foreign_api_domain(config, zoho.tokens.api_domain)
        if problem:
            checks.fail(problem[0], problem[1])
        check_events(checks, config, zoho)
        check_crm(checks, config, zoho)
        if config.book.enabled:
            check_people(checks, config, zoho)
        check_bookings(checks, config, zoho)
        check_writes(checks, config, zoho.tokens.scopes)
    return ExitCode.OK if not checks.failed else ExitCode.ACTION_FAILED


def fix_command(config: config_mod.Config) -> str:
    return f"bookings-sync auth --config {config.path}"


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
            "invalid_code": f"the refresh token is wrong, revoked or for another client: get a "
                            f"new one with {fix_command(config)}",
        }.get(exc.code, "see the message above")
        checks.fail(f"token refresh at {where}: {exc}", hint)
        return ExitCode.ACTION_FAILED
    except ZohoError as exc:
        checks.fail(f"token refresh at {where}: {exc}",
                    "is the host reachable from here (DNS, proxy, firewall)?")
        return ExitCode.ZOHO
    checks.ok(f"token refresh works: {where} answered for data center {data_center}")
    return None


def foreign_api_domain(config: config_mod.Config, api_domain: str | None
                       ) -> tuple[str, str] | None:
    """(problem, fix) when Zoho's token reply puts this account's API elsewhere than the
    configuration does: another data center's host, or — with the data center's own API host
    configured — an unknown one. None when it agrees (or says nothing, or ``api_url`` is
    overridden towards a host Zoho does not name: the sandbox, a proxy)."""
    if not api_domain:
        return None
    configured = DATA_CENTERS[config.zoho.data_center]
    named = data_center_of(api_domain)
    if named is not None and named.key != configured.key:
        return (f"Zoho's token reply says this account lives in data center {named.key!r} "
                f"(api_domain {api_domain}), not {configured.key!r} as configured",
                f"set [zoho] data_center = \"{named.key}\", create the Self Client in "
                f"{named.console} and run {fix_command(config)}")
    if named is None and config.zoho.api_url == configured.api \
            and urlsplit(api_domain).hostname != urlsplit(configured.api).hostname:
        return (f"Zoho's token reply puts this account's API at {api_domain}, not "
                f"{configured.api} as data center {configured.key!r} says",
                f"set [zoho] api_url = \"{api_domain.rstrip('/')}\"")
    return None


def _refused(checks: Checklist, config: config_mod.Config, what: str, exc: ZohoError,
             scope: str, *, bookings: bool = False) -> None:
    """A ✗ line for a call that failed; a refusal of the token names ``scope`` and the fix."""
    scope_error = (isinstance(exc, ZohoAuthError) and (bookings or exc.code in _SCOPE_CODES)) \
        or (isinstance(exc, ZohoApiError) and exc.code == "NO_PERMISSION")
    if not scope_error:
        hint = ("is the host reachable from here (DNS, proxy, firewall)?"
                if not isinstance(exc, (ZohoAuthError, ZohoApiError)) else "see the message above")
        checks.fail(f"{what}: {exc}", hint)
        return
    also = (", or the Zoho user who generated the code may not do this in CRM (Setup → Users "
            "and Control → Profiles)" if exc.code == "NO_PERMISSION" else "")
    if bookings:
        also = ", or the Bookings org is in another data center than the CRM's"
    checks.fail(f"{what}: {exc}",
                f"the token lacks scope {scope}{also}: get a token with every scope by running "
                f"{fix_command(config)}")


def _first_page(pages):
    """The first page of a paged read, without reading further."""
    try:
        return next(iter(pages))
    finally:
        pages.close()


def check_events(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    """The Meetings list (one record) and, when deletions cancel, the deleted list (one)."""
    version = config.zoho.crm_api_version
    reads = [(f"CRM Meetings list (GET /crm/{version}/Events, per_page=1)",
              lambda: zoho.crm.iter_modified(None, [], per_page=1))]
    if config.sync.on_delete is OnDelete.CANCEL:
        reads.append((f"CRM deleted-Meetings list for on_delete = \"{OnDelete.CANCEL}\" "
                      f"(GET /crm/{version}/Events/deleted, per_page=1)",
                      lambda: zoho.crm.iter_deleted(None, per_page=1)))
    for what, pages in reads:
        try:
            page = _first_page(pages())
        except ZohoError as exc:
            _refused(checks, config, what, exc, EVENTS_READ)
            continue
        checks.ok(f"{what} readable with scope {EVENTS_READ} (records read: "
                  f"{len(page.records)})")


def check_crm(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    """The Meetings field list is readable and the configured fields exist on it."""
    what = f"CRM Meetings fields (GET /crm/{config.zoho.crm_api_version}/settings/fields)"
    try:
        fields = zoho.crm.fields()
    except ZohoError as exc:
        _refused(checks, config, what, exc, FIELDS_READ)
        return
    names = {f.get("api_name") for f in fields}
    checks.ok(f"{what} readable with scope {FIELDS_READ} ({len(fields)} fields)")
    book = config.book
    for key, field in (("[crm] booking_id_field", config.crm.booking_id_field),
                       ("[crm] status_field", config.crm.status_field),
                       *((f"[book] {key}", getattr(book, key)) for key in book.FIELD_KEYS
                         if book.enabled)):
        if not field:
            continue
        if field in names:
            checks.ok(f"{key} = {field!r} exists on Meetings")
            continue
        close = difflib.get_close_matches(field, [n for n in names if n], n=3)
        checks.fail(f"{key} = {field!r} is not a Meetings field",
                    f"did you mean {', '.join(map(repr, close))}?" if close else
                    "Setup → Modules and Fields → Meetings lists the API names")


def check_people(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    """Booking from CRM reads the meeting's contact or lead: one record of each, read-only."""
    for module in ("Contacts", "Leads"):
        scope = f"ZohoCRM.modules.{module.lower()}.READ"
        what = f"CRM {module} (GET /crm/{config.zoho.crm_api_version}/{module}, one record)"
        try:
            zoho.crm.probe(module)
        except ZohoError as exc:
            _refused(checks, config, what, exc, scope)
            continue
        checks.ok(f"{what} readable with scope {scope} ([book] reads the meeting's {module[:-1]})")


def check_bookings(checks: Checklist, config: config_mod.Config, zoho: ZohoConnection) -> None:
    what = f"Bookings API at {config.zoho.api_url} (GET getappointment of a probe id)"
    try:
        zoho.bookings.get(PROBE_BOOKING_ID)
        checks.ok(f"Bookings API answers with scope {BOOKINGS}")
    except BookingsRefused:
        checks.ok(f"Bookings API answers with scope {BOOKINGS} (probe id correctly unknown)")
    except ZohoError as exc:
        _refused(checks, config, what, exc, BOOKINGS, bookings=True)


def check_writes(checks: Checklist, config: config_mod.Config,
                 granted: frozenset[str] | None) -> None:
    """CRM scopes only a write could prove: judged from the token reply's ``scope`` list."""
    for scope in required(config):
        service, operation = scope.name.split(".")[0], scope.name.rsplit(".", 1)[-1]
        if service != "ZohoCRM" or operation not in _WRITES:
            continue
        what = f"{scope.name} ({scope.why})"
        if granted is None:
            checks.note(f"{what}: cannot be proven without a write, and Zoho's token reply lists "
                        f"no scopes — generate the code with bookings-sync auth --print-scopes")
        elif covers(granted, scope.name):
            checks.ok(f"{what}: granted, as Zoho's token reply lists (check sends no write)")
        else:
            checks.fail(f"{what}: missing — Zoho's token reply grants only "
                        f"{', '.join(sorted(granted))}",
                        f"get a token with every scope by running {fix_command(config)}")
