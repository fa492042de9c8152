"""The :class:`Sandbox`: the local Zoho's data, HTTP server and control surface in one object.

Tests and drivers hold one of these; ``POST /_sandbox/<verb>`` (``control.py``) exposes the same
methods to other processes. See the package docstring for what the sandbox promises.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import json
import random
import threading

import pytz

from . import faults, scopes, server, wire
from . import fields as field_meta
from .bookings_surface import BookingsSurface
from .catcher import Catcher
from .clock import RealClock, second
from .world import PEOPLE, World

SEED_ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Calcutta",
              "Australia/Sydney", "UTC", "America/Los_Angeles"]


class Sandbox(BookingsSurface):
    """The sandbox and its control surface. ``on_page(endpoint, query)``: see ``server.py``.
    The Bookings catalog, integration and wire switches, and the call counter come from
    :class:`~.bookings_surface.BookingsSurface`."""

    def __init__(self, *, crm_time_zone: str = "UTC", token_ttl: float = 3600,
                 booking_id_field: str = "BookingId", status_field: str = "Meeting_Status",
                 clock=None, client_id: str = "1000.SANDBOXCLIENTID0000000000000",
                 client_secret: str = "sandbox-client-secret-0123456789abcdef",
                 refresh_token: str = "1000.sandbox-refresh-token.0123456789abcdef",
                 bookings_daily_limit: int | None = None, workspace_time_zone: str = "UTC",
                 integration_meetings_for_api_bookings: bool = True,
                 integration_delay_seconds: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0,
                 data_center: str = "com", extra_event_fields: dict | None = None,
                 if_modified_since: str = "strict", bookings_scope_refusal: str = "json"):
        """``extra_event_fields``: custom Meetings fields, api name → data_type ("boolean",
        "text", …). ``if_modified_since``: "strict" | "inclusive" (see crm.py).
        ``bookings_scope_refusal``: "json" | "html" (see scopes.py). ``data_center``: the one
        this sandbox's Accounts is (grant codes from another are refused)."""
        pytz.timezone(crm_time_zone)   # fail early on a typo
        for name, data_type in (extra_event_fields or {}).items():
            if data_type not in field_meta.TYPES:
                raise ValueError(f"extra_event_fields[{name!r}]: unknown data_type "
                                 f"{data_type!r} ({', '.join(sorted(field_meta.TYPES))})")
        self.clock = clock or RealClock()
        self.crm_time_zone = crm_time_zone
        self.world = World(self.clock, booking_id_field=booking_id_field,
                           status_field=status_field, client_id=client_id,
                           client_secret=client_secret, refresh_token=refresh_token,
                           token_ttl=token_ttl, workspace_time_zone=workspace_time_zone,
                           data_center=data_center, extra_event_fields=extra_event_fields)
        self.bookings_scope_refusal = "json"
        self.set_bookings_scope_refusal(bookings_scope_refusal)
        self.set_if_modified_since(if_modified_since)
        self.bookings_daily_limit = bookings_daily_limit
        self.set_integration(meetings_for_api_bookings=integration_meetings_for_api_bookings,
                             delay_seconds=integration_delay_seconds)
        self.calls: collections.Counter = collections.Counter()
        self.request_log: list[dict] = []
        self.on_page = None
        self._faults = faults.Faults()
        self._log_lock = threading.Lock()
        self._catcher: Catcher | None = None
        self._catcher_lock = threading.Lock()
        self._host, self._port = host, port
        self._server = None
        self.url = ""

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> "Sandbox":
        self._faults.closing.clear()
        self._server, _ = server.serve(self, self._host, self._port)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._faults.closing.set()          # stalls and streamed replies end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._catcher_lock:
            if self._catcher is not None:
                self._catcher.stop()
                self._catcher = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def credentials(self) -> dict:
        w = self.world
        return {"client_id": w.client_id, "client_secret": w.client_secret,
                "refresh_token": w.refresh_token}

    def config_toml(self, state_dir, *, interval: float = 60, crm: str = "", sync: str = "",
                    tables: str = "") -> str:
        """A whole bookings-sync configuration for this sandbox, as demo, tests, bench and soak
        write it: the ``[zoho]`` block, ``[crm]`` with the sandbox's booking-id field (plus the
        lines ``crm``), ``[sync]`` with ``state_dir`` and ``interval`` (plus the lines ``sync``),
        then ``tables`` (further tables, verbatim)."""
        return f"""{self.zoho_toml()}
[crm]
booking_id_field = "{self.world.booking_id_field}"
{crm}

[sync]
interval = {interval}
state_dir = "{state_dir}"
{sync}
{tables}
"""

    def zoho_toml(self) -> str:
        c = self.credentials
        return (f'[zoho]\ndata_center = "com"\naccounts_url = "{self.url}"\napi_url = "{self.url}"\n'
                f'client_id = "{c["client_id"]}"\nclient_secret = "{c["client_secret"]}"\n'
                f'refresh_token = "{c["refresh_token"]}"\n')

    # -- seeding and user actions --------------------------------------------------------------

    def book(self, start: dt.datetime, time_zone: str = "UTC", duration_minutes: int = 30,
             staff_id: str = "staff-1", customer_time_zone: str | None = None,
             service_id: str = "svc-1", customer: dict | None = None) -> tuple[str | None, str]:
        """An appointment booked in Bookings itself (no checks; unknown staff or service ids
        join the catalog), and its meeting created by the integration — ``None`` for the
        meeting while an integration delay is pending."""
        pytz.timezone(time_zone)
        with self.world.lock:
            return self.world.book(start=start, time_zone=time_zone,
                                   duration_minutes=duration_minutes, staff_id=staff_id,
                                   service_id=service_id,
                                   customer=customer or {"name": "Pat Customer",
                                                         "email": "pat@example.invalid"},
                                   customer_time_zone=customer_time_zone, check=False)

    def seed(self, count: int, rng_seed: int = 0) -> list[tuple[str, str]]:
        """``count`` upcoming booking-linked meetings in mixed time zones, no slot overlaps."""
        rng = random.Random(rng_seed)
        base = self.clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
        with self.world.lock:
            # A second seed starts after everything booked so far: slots stay distinct.
            ends = [a["start"] + dt.timedelta(minutes=a["duration"])
                    for a in self.world.appointments.values()]
        if ends and max(ends) > base:
            base = max(ends).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        pairs = []
        staff = max(8, count // 20)     # about 20 appointments a day per staff member
        for i in range(count):
            start = base + dt.timedelta(minutes=30 * (i // staff))
            pairs.append(self.book(start=start, time_zone=rng.choice(SEED_ZONES),
                                   staff_id=f"staff-{i % staff}",
                                   customer_time_zone=rng.choice(SEED_ZONES)))
        return pairs

    def crm_move(self, meeting_id: str, new_start: dt.datetime) -> None:
        """A CRM user drags the meeting (same duration). Bookings is not told."""
        with self.world.lock:
            self.world.move_meeting(meeting_id, new_start)

    def crm_edit(self, meeting_id: str, **fields) -> None:
        """A CRM user edits fields (datetimes as aware datetimes). Bookings is not told."""
        fields = _utc_seconds(fields)
        with self.world.lock:
            self.world.touch(meeting_id, **fields)

    def crm_raw(self, meeting_id: str, **fields) -> None:
        """A hostile CRM's values, stored as by an edit. Anything JSON can hold goes on the wire
        verbatim, bypassing the sandbox's typing (``None``, ``"   "``, ``42``, full-width digits,
        control characters, an ``id`` that is not digits) until the next write to that field.
        An aware datetime is stored typed instead, so it sorts and filters as that instant
        (``Modified_Time=2099-01-01`` sorts last, and stays until the next edit). Modified_Time
        moves to now unless given. Bookings is not told."""
        typed, raw = {}, {}
        for key, value in fields.items():
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    raise ValueError(f"{key}: aware datetime needed")
                typed[key] = second(value)
            else:
                raw[key] = copy.deepcopy(value)
        try:
            json.dumps(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"raw values must be what JSON can hold: {exc}") from None
        stamp = typed.pop("Modified_Time", None)
        with self.world.lock:
            record = self.world.touch(meeting_id, **typed)   # drops raw values it replaces
            if raw:
                for key in raw:
                    record.setdefault(key, None)             # a full record lists the field
                record.setdefault(wire.RAW, {}).update(raw)
            if stamp is not None:
                record.get(wire.RAW, {}).pop("Modified_Time", None)
                # After touch, whose version bump makes the list caches re-sort with this value.
                record["Modified_Time"] = stamp

    def crm_clone(self, meeting_id: str) -> str:
        """As CRM's Record Clone (v7+; Zoho: "the cloned record retains the values of the parent
        record"): a new meeting — new id, Created/Modified time now — with every other field
        copied, custom ones and hostile raw values included, so the booking-id field now stands
        on two meetings. Bookings is not told. Returns the new meeting's id."""
        with self.world.lock:
            fields = self.world.snapshot_meeting(meeting_id)
            for key in ("id", "Created_Time", "Modified_Time", "Created_By", "Modified_By"):
                fields.pop(key, None)
            return self.world.new_meeting(fields)

    def crm_cancel(self, meeting_id: str) -> None:
        """As CRM's Cancel Meeting action (no Bookings effect): see ``world.cancel_meeting``."""
        with self.world.lock:
            self.world.cancel_meeting(meeting_id)

    def crm_delete(self, meeting_id: str) -> None:
        with self.world.lock:
            self.world.delete_meeting(meeting_id)

    def bookings_reschedule(self, booking_id: str, new_start: dt.datetime) -> None:
        """A Bookings user moves the appointment; the integration updates the meeting."""
        with self.world.lock:
            self.world.reschedule(booking_id, new_start)

    def bookings_cancel(self, booking_id: str) -> None:
        with self.world.lock:
            self.world.set_status(booking_id, "cancel")

    def bookings_set_status(self, booking_id: str, action: str) -> None:
        with self.world.lock:
            self.world.set_status(booking_id, action)

    def meeting(self, meeting_id: str) -> dict:
        with self.world.lock:
            return self.world.snapshot_meeting(meeting_id)

    def appointment(self, booking_id: str) -> dict:
        with self.world.lock:
            return copy.deepcopy(self.world.appointments[booking_id])

    def meeting_for_booking(self, booking_id: str) -> str | None:
        """None while the integration has not (yet) made a meeting for the booking."""
        with self.world.lock:
            self.world.deliver_due_meetings()
            return self.world.appointments[booking_id]["meeting_id"]

    def set_crm_time_zone(self, name: str) -> None:
        pytz.timezone(name)
        self.crm_time_zone = name

    def set_bookings_daily_limit(self, limit: int | None) -> None:
        self.bookings_daily_limit = limit

    def set_if_modified_since(self, mode: str) -> None:
        """"strict": records modified after the instant; "inclusive": at or after it."""
        if mode not in ("strict", "inclusive"):
            raise ValueError(f"if_modified_since {mode!r}: strict | inclusive")
        with self.world.lock:
            self.world.if_modified_since_inclusive = mode == "inclusive"

    def set_bookings_scope_refusal(self, shape: str) -> None:
        if shape not in scopes.REFUSAL_SHAPES:
            raise ValueError(f"bookings_scope_refusal {shape!r}: json | html")
        self.bookings_scope_refusal = shape

    # -- CRM users' records: contacts, leads, meetings made in CRM ----------------------------

    def crm_create_contact(self, **fields) -> str:
        """A contact as a CRM user creates it (Last_Name mandatory; First_Name, Email, Phone …)."""
        with self.world.lock:
            return self.world.new_person("Contacts", fields)

    def crm_create_lead(self, **fields) -> str:
        with self.world.lock:
            return self.world.new_person("Leads", fields)

    def crm_create_meeting(self, **fields) -> str:
        """A meeting made in CRM (no booking behind it): ``Start_DateTime`` (aware datetime),
        ``End_DateTime`` (default +30 min), ``Who_Id`` (a contact id), ``What_Id`` with
        ``$se_module`` (e.g. a lead id and "Leads"), and any other field, custom ones included
        (e.g. ``Book_In_Bookings=True, Bookings_Service="svc-1"``)."""
        start = fields.get("Start_DateTime")
        if not isinstance(start, dt.datetime):
            raise ValueError("Start_DateTime (an aware datetime) is needed")
        fields.setdefault("End_DateTime", start + dt.timedelta(minutes=30))
        fields = _utc_seconds(fields)
        with self.world.lock:
            if fields.get("Who_Id") is not None:
                fields["Who_Id"] = self.world.lookup("Contacts", _lookup_id(fields["Who_Id"]))
            if fields.get("What_Id") is not None:
                module = fields.get("$se_module")
                if module not in PEOPLE:
                    raise ValueError(f"$se_module {module!r}: one of {', '.join(PEOPLE)}")
                fields["What_Id"] = self.world.lookup(module, _lookup_id(fields["What_Id"]))
            return self.world.new_meeting(fields)

    def crm_record(self, module: str, record_id: str) -> dict:
        with self.world.lock:
            return copy.deepcopy(self.world.records[module][record_id])

    # -- faults, tokens, counters ----------------------------------------------------------

    def inject(self, path_contains: str, kind: str, count: int | None = 1, **params) -> None:
        """The next ``count`` requests whose path contains ``path_contains`` get the fault
        (``count=None``: every one until :meth:`clear_faults`). Kinds and their parameters are
        listed in ``faults.py``, e.g. ``inject("/oauth/", "redirect", status=307)``,
        ``inject("/crm/v8/Events", "page_endless", count=None)``. A bad kind or parameter is a
        ValueError naming what is allowed."""
        self._faults.arm(path_contains, kind, count, params)

    def clear_faults(self) -> None:
        """Disarm every fault of every kind (raw CRM values are data: they stay)."""
        self._faults.clear()

    def armed_faults(self) -> list[dict]:
        """The faults still armed: path, kind, requests left (None: until cleared), params."""
        return self._faults.armed()

    @property
    def catcher(self) -> Catcher:
        """The catcher (``catcher.py``): a second listener recording requests raw, started on
        first use; ``redirect`` faults point at it by default."""
        with self._catcher_lock:
            if self._catcher is None:
                self._catcher = Catcher(self.clock, self._host)
            return self._catcher

    def expire_tokens(self) -> None:
        with self.world.lock:
            self.world.tokens.clear()

    # -- the Self Client flow ------------------------------------------------------------------

    def issue_grant_code(self, scopes_wanted, minutes: float = 3,
                         data_center: str | None = None) -> str:
        """A code as the API console's "Generate Code" makes it: for ``scopes_wanted`` (a list
        or "a,b"), good once within ``minutes`` (sandbox clock), in ``data_center`` (default:
        this sandbox's own; another one makes the exchange fail with invalid_code)."""
        granted = scopes.parse(scopes_wanted)
        if not 0 < minutes <= 10:
            raise ValueError("minutes: the API console offers 3 to 10")
        with self.world.lock:
            return self.world.issue_grant_code(granted, minutes,
                                               data_center or self.world.data_center)

    def credentials_with(self, scopes_wanted) -> dict:
        """Like :attr:`credentials`, with a new refresh token that carries only these scopes."""
        granted = scopes.parse(scopes_wanted)
        with self.world.lock:
            refresh = self.world.new_refresh_token(granted)
        return {**self.credentials, "refresh_token": refresh}

    def set_api_domain(self, url: str | None) -> None:
        """Token replies name ``url`` as ``api_domain`` (e.g. "https://www.zohoapis.eu", an
        account in another data center); None restores the sandbox's own URL."""
        with self.world.lock:
            self.world.api_domain = url

    def reset_counters(self) -> None:
        with self._log_lock:
            self.calls.clear()
            self.request_log.clear()

    def _record(self, name: str, entry: dict) -> None:
        with self._log_lock:
            self.calls[name] += 1
            self.request_log.append(entry)



def _utc_seconds(fields: dict) -> dict:
    """Datetime values as CRM stores them: aware, UTC, whole seconds (naive ones refused)."""
    out = dict(fields)
    for key, value in fields.items():
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValueError(f"{key}: aware datetime needed")
            out[key] = value.astimezone(dt.timezone.utc).replace(microsecond=0)
    return out


def _lookup_id(value) -> str:
    return str(value["id"] if isinstance(value, dict) else value)
