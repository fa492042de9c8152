"""The sandbox's data: CRM meetings, Bookings appointments, access tokens — and the Bookings→CRM
integration that links them.

Facts followed (shared/zoho-api.md): meetings are CRM ``Events`` with numeric string ids and
second-resolution ``Modified_Time``; an appointment's ``start_time`` is wall time in its
``time_zone``; Zoho's integration creates a meeting per booking, keeps the booking id in a
Meetings field (its API name is configurable, as in real orgs), and writes every reschedule,
cancel and status change made in Bookings back into that meeting, bumping ``Modified_Time``.
That write-back is what makes a sync loop possible, so it is real here.

A cancelled meeting: Zoho's Cancel Meeting docs (CRM v2.1-v8, "meeting-cancel") say the state
shows in the record's ``$event_cancelled`` key; the sandbox sets that to true *and* sets the
picklist ``Meeting_Status`` (name configurable) to "Cancelled", the field an org maps for its own
status and the one the daemon's ``[crm] status_field`` reads. Bookings-side cancels reach the
meeting the same way through the integration (Zoho does not document which fields it writes).

The Bookings half (catalog, appointments, the integration's meetings, with their switches and
delay) lives in ``appointments.AppointmentBook``, which ``World`` extends.

Contacts and Leads are the people a meeting refers to: ``Who_Id`` is a contact (Zoho's Events
response: "the contact that the event is related to"), ``What_Id`` with ``$se_module`` names a
record of another module (a lead among them). Lookups are stored as ``{"name", "id"}``, as Zoho
renders them.

Tokens: every access token carries the scopes of the refresh token it was minted from; the
ready-made refresh token has :data:`scopes.FULL`. Self Client grant codes (``issue_grant_code``)
are one-time, expire on the sandbox clock and belong to one data center; redeeming one creates a
new refresh token with the code's scopes. The 10-tokens-per-10-minutes budget is kept per refresh
token, as Zoho states it.

All instants are aware UTC; rendering to the wire format is the handlers' job. One lock guards
everything; the HTTP server is threaded.
"""

from __future__ import annotations

import bisect
import collections
import copy
import datetime as dt
import itertools
import secrets
import threading

from . import scopes, wire
from .appointments import AppointmentBook, Refusal   # noqa: F401 (Refusal: re-exported)
from .clock import second

UTC = dt.timezone.utc
OWNER = {"name": "Sandbox Admin", "id": "4876876000000000001", "email": "admin@sandbox.invalid"}
PEOPLE = ("Contacts", "Leads")              # the modules a meeting's Who_Id / What_Id refer to


class World(AppointmentBook):
    def __init__(self, clock, *, booking_id_field: str, status_field: str,
                 client_id: str, client_secret: str, refresh_token: str, token_ttl: float,
                 workspace_time_zone: str = "UTC",
                 data_center: str = "com", extra_event_fields: dict | None = None):
        self.clock = clock
        self.lock = threading.RLock()
        self.booking_id_field = booking_id_field
        self.status_field = status_field
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.token_ttl = token_ttl
        self._meetings: dict[str, dict] = {}
        self.deleted: list[dict] = []
        self._records: dict[str, dict[str, dict]] = {"Events": self._meetings,
                                                      **{m: {} for m in PEOPLE}}
        self.deleted_in: dict[str, list[dict]] = {"Events": self.deleted,
                                                   **{m: [] for m in PEOPLE}}
        self.tokens: dict[str, dt.datetime] = {}          # access token -> expiry
        self.token_scopes: dict[str, frozenset] = {}      # access token -> its scopes
        self.refresh_scopes: dict[str, frozenset] = {refresh_token: scopes.FULL}
        self.token_issued: dict[str, collections.deque] = collections.defaultdict(
            collections.deque)                             # refresh token -> mint times
        self.grant_codes: dict[str, dict] = {}
        self.data_center = data_center
        self.api_domain: str | None = None                 # token replies: None = the sandbox
        self.extra_event_fields = dict(extra_event_fields or {})   # api name -> data_type
        self.if_modified_since_inclusive = False
        self.page_tokens: dict[str, tuple[dict, int, dt.datetime]] = {}
        self._ids = itertools.count(4876876000000100001)
        self.version = 0                                   # bumps on every CRM write
        self._order_cache: dict[tuple, tuple[int, list]] = {}
        self._init_bookings(workspace_time_zone)

    # -- tokens -----------------------------------------------------------------------------

    def issue_token(self) -> tuple[str, int]:
        """A new access token with the full scope set; ``bind_token`` narrows it to the
        refresh token it was minted from (two steps so tests may wrap this one)."""
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.tokens[token] = self.clock.now() + dt.timedelta(seconds=self.token_ttl)
        self.token_scopes[token] = scopes.FULL
        return token, int(self.token_ttl)

    def bind_token(self, access_token: str, refresh_token: str) -> frozenset:
        granted = self.refresh_scopes[refresh_token]
        self.token_scopes[access_token] = granted
        self.token_issued[refresh_token].append(self.clock.now())
        return granted

    def token_budget_left(self, refresh_token: str | None = None) -> bool:
        """Zoho: at most 10 access tokens per 10 minutes for one refresh token."""
        issued = self.token_issued[refresh_token or self.refresh_token]
        cutoff = self.clock.now() - dt.timedelta(minutes=10)
        while issued and issued[0] <= cutoff:
            issued.popleft()
        return len(issued) < 10

    def token_valid(self, token: str | None) -> bool:
        expiry = self.tokens.get(token or "")
        return expiry is not None and self.clock.now() < expiry

    def scopes_of(self, token: str | None) -> frozenset:
        return self.token_scopes.get(token or "", frozenset()) if self.token_valid(token) \
            else frozenset()

    def new_refresh_token(self, granted: frozenset) -> str:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.refresh_scopes[token] = frozenset(granted)
        return token

    def issue_grant_code(self, granted: frozenset, minutes: float, data_center: str) -> str:
        code = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.grant_codes[code] = {"scopes": frozenset(granted), "data_center": data_center,
                                  "expires": self.clock.now() + dt.timedelta(minutes=minutes)}
        return code

    def redeem_grant_code(self, code: str | None) -> frozenset | None:
        """The code's scopes, once: None when unknown, used, expired or from another data
        center (all ``invalid_code`` at Zoho)."""
        grant = self.grant_codes.get(code or "")
        if grant is None or grant["data_center"] != self.data_center:
            return None
        del self.grant_codes[code]
        return grant["scopes"] if self.clock.now() < grant["expires"] else None

    # -- CRM meetings -----------------------------------------------------------------------

    @property
    def meetings(self) -> dict[str, dict]:
        """Every CRM meeting — after the integration has added those that are due by now, so
        a delayed integration meeting appears to every reader at the same sandbox instant."""
        self.deliver_due_meetings()
        return self._meetings

    @property
    def records(self) -> dict[str, dict[str, dict]]:
        """Module name → id → record (Events, Contacts, Leads), delayed meetings delivered."""
        self.deliver_due_meetings()
        return self._records

    def new_meeting(self, fields: dict) -> str:
        meeting_id = str(next(self._ids))
        now = second(self.clock.now())
        record = {
            "id": meeting_id, "Event_Title": "Meeting", "All_day": False, "Location": None,
            "Owner": dict(OWNER), "Created_By": dict(OWNER), "Modified_By": dict(OWNER),
            "Created_Time": now, "Modified_Time": now, "Participants": [], "What_Id": None,
            "Who_Id": None, "Description": None, self.status_field: "Scheduled",
            self.booking_id_field: None, "$event_cancelled": False,
        }
        # An org's custom fields exist on every record; a checkbox is false until ticked.
        record.update({name: False if data_type == "boolean" else None
                       for name, data_type in self.extra_event_fields.items()})
        record.update(fields)
        self._meetings[meeting_id] = record
        self.version += 1
        return meeting_id

    def new_person(self, module: str, fields: dict) -> str:
        """A contact or lead as a CRM user creates it (``Last_Name`` is mandatory in both)."""
        if module not in PEOPLE:
            raise ValueError(f"{module!r}: Contacts or Leads")
        if not fields.get("Last_Name"):
            raise ValueError("Last_Name is mandatory")
        record_id = str(next(self._ids))
        now = second(self.clock.now())
        record = {"id": record_id, "Owner": dict(OWNER), "Created_By": dict(OWNER),
                  "Modified_By": dict(OWNER), "Created_Time": now, "Modified_Time": now,
                  "First_Name": None, "Email": None, "Phone": None, "Description": None,
                  **({"Company": None} if module == "Leads" else {})}
        record.update(fields)
        record["Full_Name"] = " ".join(filter(None, (record["First_Name"], record["Last_Name"])))
        self.records[module][record_id] = record
        self.version += 1
        return record_id

    def lookup(self, module: str, record_id: str) -> dict:
        """``{"name", "id"}`` of a contact or lead, as lookups are rendered."""
        record = self.records.get(module, {}).get(str(record_id))
        if record is None:
            raise ValueError(f"no {module} record {record_id}")
        return {"name": record["Full_Name"], "id": record["id"]}

    def touch(self, meeting_id: str, **fields) -> dict:
        record = self.meetings[meeting_id]
        record.update(fields)
        for name in fields:                 # a write replaces a hostile value (Sandbox.crm_raw)
            record.get(wire.RAW, {}).pop(name, None)
        record["Modified_Time"] = second(self.clock.now())
        self.version += 1
        return record

    def cancel_meeting(self, meeting_id: str) -> dict:
        return self.touch(meeting_id, **{self.status_field: "Cancelled", "$event_cancelled": True})

    def move_meeting(self, meeting_id: str, start: dt.datetime) -> None:
        record = self.meetings[meeting_id]
        duration = record["End_DateTime"] - record["Start_DateTime"]
        start = start.astimezone(UTC)
        self.touch(meeting_id, Start_DateTime=start, End_DateTime=start + duration)

    def delete_meeting(self, meeting_id: str) -> dict:
        return self.delete_record("Events", meeting_id)

    def delete_record(self, module: str, record_id: str) -> dict:
        record = self.records[module].pop(record_id)
        self.version += 1
        entry = {"id": record_id, "display_name": record.get("Event_Title",
                                                             record.get("Full_Name")),
                 "type": "recycle", "deleted_by": {"name": OWNER["name"], "id": OWNER["id"]},
                 "created_by": {"name": OWNER["name"], "id": OWNER["id"]},
                 "deleted_time": second(self.clock.now())}
        self.deleted_in[module].append(entry)
        return entry

    def ordered(self, sort_by: str, descending: bool, module: str = "Events") -> list[dict]:
        """Records sorted by ``sort_by`` then id, cached until the next write (a naive poller
        listing 100k meetings page by page must not re-sort them per page)."""
        records = self.records[module].values()   # delivers due meetings: it bumps the version
        key = (module, sort_by, descending)
        cached = self._order_cache.get(key)
        if cached and cached[0] == self.version:
            return cached[1]
        if sort_by == "id":
            rows = sorted(records, key=lambda r: int(r["id"]), reverse=descending)
        else:
            rows = sorted(records, key=lambda r: (r[sort_by], int(r["id"])), reverse=descending)
        self._order_cache = {k: v for k, v in self._order_cache.items() if v[0] == self.version}
        self._order_cache[key] = (self.version, rows)
        return rows

    def passes_if_modified_since(self, stamp: dt.datetime, since: dt.datetime | None) -> bool:
        """Does ``If-Modified-Since: since`` keep a record stamped ``stamp``? Strictly after by
        default; at or after when ``if_modified_since_inclusive`` (see crm.py)."""
        if since is None:
            return True
        return stamp >= since if self.if_modified_since_inclusive else stamp > since

    def modified_after(self, since: dt.datetime | None, sort_by: str, descending: bool,
                       module: str = "Events") -> list[dict]:
        rows = self.ordered(sort_by, descending, module)
        if since is None:
            return rows
        if sort_by == "Modified_Time" and not descending:
            keys = [r["Modified_Time"] for r in rows]
            cut = bisect.bisect_left if self.if_modified_since_inclusive else bisect.bisect_right
            return rows[cut(keys, since):]
        return [r for r in rows if self.passes_if_modified_since(r["Modified_Time"], since)]

    def snapshot_meeting(self, meeting_id: str) -> dict:
        return copy.deepcopy(self.meetings[meeting_id])
