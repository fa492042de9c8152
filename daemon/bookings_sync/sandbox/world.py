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

from . import wire
from .appointments import AppointmentBook, Refusal   # noqa: F401 (Refusal: re-exported)
from .clock import second

UTC = dt.timezone.utc
OWNER = {"name": "Sandbox Admin", "id": "4876876000000000001", "email": "admin@sandbox.invalid"}


class World(AppointmentBook):
    def __init__(self, clock, *, booking_id_field: str, status_field: str,
                 client_id: str, client_secret: str, refresh_token: str, token_ttl: float,
                 workspace_time_zone: str = "UTC"):
        self.clock = clock
        self.lock = threading.RLock()
        self.booking_id_field = booking_id_field
        self.status_field = status_field
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.token_ttl = token_ttl
        self._meetings: dict[str, dict] = {}
        self.deleted: list[dict] = []
        self.tokens: dict[str, dt.datetime] = {}          # access token -> expiry
        self.token_issued: collections.deque = collections.deque()
        self.page_tokens: dict[str, tuple[dict, int, dt.datetime]] = {}
        self._ids = itertools.count(4876876000000100001)
        self.version = 0                                   # bumps on every CRM write
        self._order_cache: dict[tuple, tuple[int, list]] = {}
        self._init_bookings(workspace_time_zone)

    # -- tokens -----------------------------------------------------------------------------

    def issue_token(self) -> tuple[str, int]:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        now = self.clock.now()
        self.tokens[token] = now + dt.timedelta(seconds=self.token_ttl)
        self.token_issued.append(now)
        return token, int(self.token_ttl)

    def token_budget_left(self) -> bool:
        """Zoho: at most 10 access tokens per 10 minutes for one refresh token."""
        cutoff = self.clock.now() - dt.timedelta(minutes=10)
        while self.token_issued and self.token_issued[0] <= cutoff:
            self.token_issued.popleft()
        return len(self.token_issued) < 10

    def token_valid(self, token: str | None) -> bool:
        expiry = self.tokens.get(token or "")
        return expiry is not None and self.clock.now() < expiry

    # -- CRM meetings -----------------------------------------------------------------------

    @property
    def meetings(self) -> dict[str, dict]:
        """Every CRM meeting — after the integration has added those that are due by now, so
        a delayed integration meeting appears to every reader at the same sandbox instant."""
        self.deliver_due_meetings()
        return self._meetings

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
        record.update(fields)
        self._meetings[meeting_id] = record
        self.version += 1
        return meeting_id

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
        record = self.meetings.pop(meeting_id)
        self.version += 1
        entry = {"id": meeting_id, "display_name": record.get("Event_Title"), "type": "recycle",
                 "deleted_by": {"name": OWNER["name"], "id": OWNER["id"]},
                 "created_by": {"name": OWNER["name"], "id": OWNER["id"]},
                 "deleted_time": second(self.clock.now())}
        self.deleted.append(entry)
        return entry

    def ordered(self, sort_by: str, descending: bool) -> list[dict]:
        """Meetings sorted by ``sort_by`` then id, cached until the next write (a naive poller
        listing 100k meetings page by page must not re-sort them per page)."""
        self.deliver_due_meetings()          # a delivery bumps the version: do it first
        key = (sort_by, descending)
        cached = self._order_cache.get(key)
        if cached and cached[0] == self.version:
            return cached[1]
        if sort_by == "id":
            rows = sorted(self.meetings.values(), key=lambda r: int(r["id"]), reverse=descending)
        else:
            rows = sorted(self.meetings.values(), key=lambda r: (r[sort_by], int(r["id"])),
                          reverse=descending)
        self._order_cache = {k: v for k, v in self._order_cache.items() if v[0] == self.version}
        self._order_cache[key] = (self.version, rows)
        return rows

    def modified_after(self, since: dt.datetime | None, sort_by: str, descending: bool) -> list[dict]:
        rows = self.ordered(sort_by, descending)
        if since is None:
            return rows
        if sort_by == "Modified_Time" and not descending:
            keys = [r["Modified_Time"] for r in rows]
            return rows[bisect.bisect_right(keys, since):]
        return [r for r in rows if r["Modified_Time"] > since]

    def snapshot_meeting(self, meeting_id: str) -> dict:
        return copy.deepcopy(self.meetings[meeting_id])
