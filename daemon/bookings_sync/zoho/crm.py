"""Zoho CRM Meetings (module ``Events``): list what changed, list what was deleted, read the field
list, update a meeting.

**Keyset paging** (:meth:`CrmClient.iter_modified`, sorted by ``Modified_Time`` ascending).
Plain offset paging (page=1, 2, …) skips a record when another one is edited between two page
requests: the edited record jumps to the end of the ordering and everything behind it moves up
one slot. So:

1. After a page with ``more_records``, the next request starts again at ``page=1`` with
   ``If-Modified-Since`` = the page's last ``Modified_Time`` minus one second. Records of that
   second come again; the caller drops duplicates by (id, Modified_Time).
2. Only when that would not advance — the page's first and last record share one second (a
   bulk update of hundreds of meetings), so the new since would not pass the records already
   read — the walk steps by offset under the same ``If-Modified-Since``: page 2, 3, …, and once
   ``page × per_page`` would pass 2,000, Zoho's ``page_token`` (the previous
   ``info.next_page_token``).
3. Offset steps can still skip a record if one read before the step is edited before the next
   page. The edited record then comes back later in the same walk with a newer
   ``Modified_Time``; when that happens after an offset step, the walk rewinds to page 1 with
   ``If-Modified-Since`` = its old ``Modified_Time`` minus one second and reads that stretch
   again (at most ``MAX_REWINDS`` times a walk). A record *deleted* inside a crowded second
   during the walk shifts positions unseen; the engine's overlap re-read is the backstop there.

Every reply is yielded as a :class:`Page` with the server's clock at that reply (its ``Date``
header), empty pages included: the engine tells when a Modified_Time second is over by the
server's clock, never the local one. 204 (and 304) mean "nothing". The deleted list (sorted by deletion time by Zoho, no sort
parameter) is paged plainly, ``page_token`` past 2,000.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import time
from typing import Iterable, Iterator, Sequence

import structlog

from .errors import ZohoApiError, ZohoPayloadError
from .http import ZohoHttp
from .timefmt import TimeFormatError, format_crm_datetime, parse_crm_datetime

MAX_OFFSET_RECORDS = 2000          # page × per_page reachable without a page_token
MAX_REWINDS = 5                    # re-reads after a detected shift, per walk
# One walk never reads more than this: 1,000 pages is 200,000 records, twice Zoho's page_token
# reach; 600 s is well inside the service's WatchdogSec (15 min).
MAX_WALK_PAGES = 1000
MAX_WALK_SECONDS = 600
# How far past the server's clock (its Date header) a Modified_Time is still believed.
CLOCK_SKEW_SECONDS = 60
log = structlog.get_logger("bookings_sync.zoho.crm")
NO_CONTENT = (204, 304)


@dataclasses.dataclass(frozen=True)
class Page:
    """One list reply: its records (none for a 204) and the server's clock when it was served."""
    records: list[dict]
    server_time: dt.datetime | None


class CrmClient:
    def __init__(self, http: ZohoHttp, api_url: str, *, version: str = "v8",
                 module: str = "Events"):
        self.http = http
        self.base = f"{api_url.rstrip('/')}/crm/{version}"
        self.module = module

    # -- reading ---------------------------------------------------------------------------

    def iter_modified(self, since: dt.datetime | None, fields: Sequence[str],
                      per_page: int = 200) -> Iterator[Page]:
        """Pages of records modified after ``since`` (all records when None), oldest first."""
        names = list(dict.fromkeys(["id", "Modified_Time", *fields]))
        params = {"fields": ",".join(names), "sort_by": "Modified_Time", "sort_order": "asc",
                  "per_page": per_page}
        yield from self._walk(f"{self.base}/{self.module}", params, since, per_page,
                              keyset_field="Modified_Time")

    def iter_deleted(self, since: dt.datetime | None, per_page: int = 200) -> Iterator[Page]:
        """Pages of deleted-record entries (``id``, ``deleted_time`` …) since ``since``.

        Zoho sorts this list by deletion time, newest first, and offers no sort parameter, so
        keyset paging does not apply: plain pages, then ``page_token`` past 2,000.
        """
        params = {"type": "all", "per_page": per_page}
        yield from self._walk(f"{self.base}/{self.module}/deleted", params, since, per_page)

    def fields(self) -> list[dict]:
        response = self.http.request("crm", "GET", f"{self.base}/settings/fields",
                                     params={"module": self.module})
        if response.status_code in NO_CONTENT:
            return []
        body = _body(response, "settings/fields")
        fields = body.get("fields")
        if not isinstance(fields, list):
            raise ZohoPayloadError("GET settings/fields: reply has no 'fields' list")
        return fields

    def get_meeting(self, meeting_id: str, fields: Sequence[str]) -> dict | None:
        return self.get_record(self.module, meeting_id, fields)

    def get_record(self, module: str, record_id: str, fields: Sequence[str]) -> dict | None:
        """One record of ``module`` (Events, Contacts, Leads), or None when it is gone."""
        response = self.http.request("crm", "GET", f"{self.base}/{module}/{record_id}",
                                     params={"fields": ",".join(["id", *fields])})
        if response.status_code in NO_CONTENT:
            return None
        data = _body(response, f"{module}/{record_id}").get("data") or []
        return data[0] if data and isinstance(data[0], dict) else None

    def probe(self, module: str) -> None:
        """Read one record of ``module`` (or learn there is none): proves the read scope."""
        self.http.request("crm", "GET", f"{self.base}/{module}",
                          params={"fields": "id", "per_page": 1})

    def delete_meeting(self, meeting_id: str) -> None:
        """Delete one meeting (to the recycle bin, as Zoho does)."""
        response = self.http.request("crm", "DELETE", f"{self.base}/{self.module}/{meeting_id}")
        [result] = _results(response, f"DELETE {self.module}/{meeting_id}")
        if result.get("status") != "success":
            raise ZohoApiError(f"DELETE {self.module} {meeting_id}: {result.get('message')}",
                               code=str(result.get("code", "")))

    # -- writing ---------------------------------------------------------------------------

    def update_meeting(self, meeting_id: str, values: dict) -> dict:
        """PUT one record; returns Zoho's ``details`` (id, Modified_Time …)."""
        record = {"id": meeting_id}
        for key, value in values.items():
            record[key] = format_crm_datetime(value) if isinstance(value, dt.datetime) else value
        response = self.http.request("crm", "PUT", f"{self.base}/{self.module}",
                                     json={"data": [record]})
        [result] = _results(response, f"PUT {self.module}")
        if result.get("status") != "success":
            raise ZohoApiError(f"PUT {self.module} {meeting_id}: {result.get('message')}",
                               code=str(result.get("code", "")))
        return result.get("details") or {}

    def cancel_meeting(self, meeting_id: str, *, send_cancelling_mail: bool = False) -> None:
        response = self.http.request(
            "crm", "POST", f"{self.base}/{self.module}/{meeting_id}/actions/cancel",
            json={"data": [{"send_cancelling_mail": send_cancelling_mail}]})
        [result] = _results(response, f"cancel {meeting_id}")
        if result.get("status") != "success":
            raise ZohoApiError(f"cancel meeting {meeting_id}: {result.get('message')}",
                               code=str(result.get("code", "")))

    # -- paging ----------------------------------------------------------------------------

    def _list(self, url: str, params: dict, since: dt.datetime | None) -> tuple[Page, dict]:
        headers = {"If-Modified-Since": format_crm_datetime(since)} if since else None
        response = self.http.request("crm", "GET", url, params=params, headers=headers)
        server_time = _server_time(response)
        if response.status_code in NO_CONTENT:
            return Page([], server_time), {}
        body = _body(response, url.rsplit("/crm/", 1)[-1])
        data, info = body.get("data"), body.get("info") or {}
        if not isinstance(data, list) or not isinstance(info, dict):
            raise ZohoPayloadError(f"GET {url.rsplit('/crm/', 1)[-1]}: reply lacks data/info")
        return Page(data, server_time), info

    def _walk(self, url: str, base: dict, since: dt.datetime | None, per_page: int,
              keyset_field: str | None = None) -> Iterator[Page]:
        """Pages of a list; with ``keyset_field`` (an ascending sort on it), keyset steps and
        rewinds as the module docstring describes."""
        what = url.rsplit("/crm/", 1)[-1]
        bounds = _WalkBounds(what)
        page, token = 1, None
        rewinds = 0
        shifts = _ShiftWatch(keyset_field)
        while True:
            bounds.before_request(since, page, token)
            params = dict(base, **({"page_token": token} if token else {"page": page}))
            reply, info = self._list(url, params, since)
            records = [r for r in reply.records if isinstance(r, dict)]   # others: adapter's
            # The keyset step needs only the first and last stamps (the engine parses the rest).
            first = _first_stamp(records, keyset_field)
            last = _first_stamp(reversed(records), keyset_field)
            rewind_to = shifts.rewind_to(records) if first is not None else None
            bounds.after_page(records)
            yield reply
            if rewind_to is not None:
                if rewinds < MAX_REWINDS:
                    rewinds += 1
                    log.info("crm.paging_rewind", path=what, rewinds=rewinds)
                    since, page, token = rewind_to - dt.timedelta(seconds=1), 1, None
                    bounds.rewound()
                    continue
                # Edits keep landing mid-walk: finish; the engine's overlap re-read covers it.
                log.warning("crm.paging_rewinds_exhausted", path=what, rewinds=rewinds)
            if not reply.records:
                if info.get("more_records"):
                    raise ZohoPayloadError(f"GET {what}: an empty page that claims more "
                                           f"records; stopped after {bounds.pages} pages")
                return
            if not info.get("more_records"):
                return
            if first is not None and first < last and last <= _trusted_limit(reply) and (
                    since is None or last - dt.timedelta(seconds=1) > since):
                # Keyset step, immune to shifts: restart just before the last second seen.
                # Never past the server's clock (a record stamped 2099 must not skip the rest),
                # and only forward: a server whose If-Modified-Since is inclusive answers
                # "since S" with second S again, so a page spanning S and S+1 would repeat.
                since = last - dt.timedelta(seconds=1)
                page, token = 1, None
                continue
            shifts.offset_steps += 1   # no keyset, a crowded second, or untrusted stamps
            if token is None and (page + 1) * per_page <= MAX_OFFSET_RECORDS:
                page += 1
            else:
                token = info.get("next_page_token")
                if not token:
                    raise ZohoPayloadError(f"GET {what}: more_records without next_page_token "
                                           f"past {MAX_OFFSET_RECORDS} records")
                bounds.new_page_token(str(token))


def _first_stamp(records: Iterable[dict], keyset_field: str | None) -> dt.datetime | None:
    if keyset_field:
        for record in records:
            value = _stamp(record, keyset_field)
            if value is not None:
                return value
    return None


class _ShiftWatch:
    """Spots an edit that may have shifted a later offset page: a record seen again with
    another keyset value than when an earlier offset step read it. Such an edit moves the
    record to the end of the sort, so every record behind it slid one place towards the pages
    already read; the walk rewinds to the oldest value it had."""

    def __init__(self, keyset_field: str | None):
        self.keyset_field = keyset_field
        self.offset_steps = 0
        # id -> (keyset value as sent, offset_steps when last seen)
        self.seen: dict[str, tuple[str, int]] = {}

    def rewind_to(self, records: list[dict]) -> dt.datetime | None:
        field, rewind_to = self.keyset_field, None
        for record in records:
            value = _key(record.get(field))
            before = self.seen.get(_key(record.get("id")))
            if before and before[0] != value and before[1] < self.offset_steps:
                old = _stamp({field: before[0]}, field)
                if old is not None:
                    rewind_to = old if rewind_to is None else min(rewind_to, old)
            self.seen[_key(record.get("id"))] = (value, self.offset_steps)
        return rewind_to


class _WalkBounds:
    """Stops a walk that a lying or broken server would keep going: the same request twice
    (a page that repeats with ``more_records: true``), a page token handed out twice, more than
    :data:`MAX_WALK_PAGES` pages or :data:`MAX_WALK_SECONDS` seconds. Each stop is a
    :class:`ZohoPayloadError` saying why (the cycle then exits 3; nothing is committed)."""

    def __init__(self, what: str):
        self.what, self.pages, self.started = what, 0, time.monotonic()
        self.requests: set[tuple] = set()
        self.tokens: set[str] = set()
        self.versions: set[tuple] = set()      # (id, Modified_Time) read so far
        self.stale = 0                         # pages in a row that brought nothing new

    def before_request(self, since, page, token) -> None:
        self.pages += 1
        if self.pages > MAX_WALK_PAGES:
            raise ZohoPayloadError(f"GET {self.what}: still more_records after {MAX_WALK_PAGES} "
                                   f"pages; stopped (the limit of one walk)")
        if time.monotonic() - self.started > MAX_WALK_SECONDS:
            raise ZohoPayloadError(f"GET {self.what}: still more_records after "
                                   f"{MAX_WALK_SECONDS} s; stopped (the limit of one walk)")
        key = (since, page, token)
        if key in self.requests:
            raise ZohoPayloadError(f"GET {self.what}: the server repeated a page it had already "
                                   f"sent, with more_records: true; stopped after "
                                   f"{self.pages - 1} pages")
        self.requests.add(key)

    def new_page_token(self, token: str) -> None:
        if token in self.tokens:
            raise ZohoPayloadError(f"GET {self.what}: the server handed out the same "
                                   f"next_page_token twice; stopped after {self.pages} pages")
        self.tokens.add(token)

    def after_page(self, records: list[dict]) -> None:
        """Two pages in a row of records already read, each claiming more: a repeat."""
        versions = {(_key(r.get("id")), _key(r.get("Modified_Time"))) for r in records}
        self.stale = self.stale + 1 if versions and versions <= self.versions else 0
        self.versions |= versions
        if self.stale >= 2:
            raise ZohoPayloadError(f"GET {self.what}: the server repeated a page it had already "
                                   f"sent, with more_records: true; stopped after "
                                   f"{self.pages} pages")

    def rewound(self) -> None:
        # A rewind reads again on purpose (at most MAX_REWINDS times): start counting afresh.
        self.requests.clear()
        self.versions.clear()
        self.stale = 0


def _key(value):
    """A record's value as a dict key or set member: a hostile server may send any JSON."""
    return value if isinstance(value, (str, int, float, type(None))) else repr(value)


def _trusted_limit(reply: Page) -> dt.datetime:
    """The latest Modified_Time a walk may step to: the server's clock (else ours) plus skew."""
    now = reply.server_time or dt.datetime.now(dt.timezone.utc)
    return now + dt.timedelta(seconds=CLOCK_SKEW_SECONDS)


def _server_time(response) -> dt.datetime | None:
    try:
        value = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return value if value and value.tzinfo else None


def _stamp(record: dict, field: str) -> dt.datetime | None:
    """The record's keyset value, or None when it is unreadable (the engine's adapter reports
    the record; the walk just does not step by it)."""
    try:
        return parse_crm_datetime(record.get(field))
    except (TimeFormatError, OverflowError):
        return None


def _body(response, what: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise ZohoPayloadError(f"GET {what}: reply is not JSON") from None
    if not isinstance(body, dict):
        raise ZohoPayloadError(f"GET {what}: reply is not a JSON object")
    return body


def _results(response, what: str) -> list[dict]:
    body = _body(response, what)
    data = body.get("data")
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise ZohoPayloadError(f"{what}: reply lacks one per-record result")
    return data
