"""The snapshot store: what the daemon last saw of each meeting, the cursor, pending actions and
recorded failures — one TinyDB file in the state directory.

Promises:
- **Atomic**: TinyDB's default storage truncates the file and rewrites it in place, which tears on
  a crash. :class:`AtomicJSONStorage` keeps the database in memory and writes it only on
  :meth:`SnapshotStore.commit`, as temp file + fsync + ``os.replace`` + fsync of the directory, so
  a kill -9 at any instant leaves either the old or the new state.
- **One writer**: :meth:`SnapshotStore.open` takes an exclusive ``flock`` on ``state_dir/lock``;
  a second writer gets :class:`StateLocked`. Readers (``status``) open read-only with no lock —
  ``os.replace`` means they always see a whole file.
- **Fast at 100,000 meetings**: documents are keyed by the CRM id (TinyDB ``doc_id``), so a lookup
  is a dict access, and a commit applies all of a cycle's changes in one pass per table.
- **No secrets**: the store holds ids, times and Zoho's messages — never a token.
- **One time format**: instants in rows and meta are :func:`stamp` text — compact, sortable UTC
  (``2026-03-08T15:00:00Z``), so the store can compare them as strings (prune, upcoming).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

STATE_FILE = "state.json"
LAST_CYCLE_FILE = "last-cycle.json"
LOCK_FILE = "lock"
FORMAT_VERSION = 1


STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(instant: dt.datetime | None) -> str | None:
    """An aware instant as the state file writes it: ``2026-03-08T15:00:00Z`` (None stays None)."""
    if instant is None:
        return None
    return instant.astimezone(dt.timezone.utc).strftime(STAMP_FORMAT)


def parse_stamp(text: str | None) -> dt.datetime | None:
    """The instant :func:`stamp` wrote (None or "" → None)."""
    if not text:
        return None
    # fromisoformat is ~20x faster than strptime, and a cycle parses thousands of these.
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"state timestamp {text!r} has no UTC marker")
    return value


class StateLocked(Exception):
    """Another bookings-sync process holds the state directory."""


class StateCorrupt(Exception):
    """The state file exists but cannot be read (hand-edited, wrong program, disk fault)."""


class AtomicJSONStorage(Storage):
    """TinyDB storage held in memory, persisted only by :meth:`flush` (atomic replace)."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.writes = 0           # how many times the file was replaced (benchmarks count these)
        self._dirty = False
        self._data: dict | None = None
        try:
            with open(self.path, "rb") as fh:
                self._data = json.load(fh)
        except FileNotFoundError:
            self._data = None
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateCorrupt(f"{self.path}: not a bookings-sync state file ({exc})") from None
        if self._data is not None and not isinstance(self._data, dict):
            raise StateCorrupt(f"{self.path}: not a bookings-sync state file (top level is not an object)")

    def read(self) -> dict | None:
        return self._data

    def write(self, data: dict) -> None:
        # TinyDB calls this on every change; we only remember that there is something to flush.
        self._data = data
        self._dirty = True

    def flush(self) -> bool:
        """Persist if anything changed. Returns whether the file was written."""
        if not self._dirty:
            return False
        if self.readonly:
            raise RuntimeError("read-only store cannot be written")
        atomic_write_json(self.path, self._data)
        self._dirty = False
        self.writes += 1
        return True

    def close(self) -> None:
        pass


def atomic_write_json(path: Path, data: Any, *, mode: int = 0o644) -> None:
    """Write ``data`` as JSON to ``path`` so that readers and crashes see old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = json.dumps(data, separators=(",", ":"), sort_keys=False).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)   # make the rename itself durable
    finally:
        os.close(dir_fd)


def meeting_doc_id(meeting_id: str) -> int:
    """CRM record ids are numeric strings ("4876876000000412345"); they are our doc ids."""
    if not isinstance(meeting_id, str) or not meeting_id.isdigit():
        raise ValueError(f"CRM record id {meeting_id!r} is not a numeric string")
    return int(meeting_id)


class SnapshotStore:
    """Narrow API over the TinyDB file; callers never see TinyDB.

    Tables: ``meetings`` (one doc per booking-linked meeting), ``pending`` (actions recorded
    before they run), ``failures`` (refusals waiting for the meeting to change or a ``retry``),
    ``meta`` (a single doc: cursor, last cycle, counters).
    """

    def __init__(self, state_dir: Path, *, readonly: bool = False):
        self.state_dir = Path(state_dir)
        self.readonly = readonly
        self._lock_fd: int | None = None
        # booking id → meeting ids (built on first use: see meetings_linked_to).
        self._booking_links: dict[str, set[str]] | None = None
        self._booking_of: dict[str, str] = {}
        self._conflicted: set[str] = set()
        if not readonly:
            self._lock_fd = _lock(self.state_dir)
            # A writer killed mid-commit leaves its temp file; the lock says nobody owns it now.
            for stale in self.state_dir.glob(f".{STATE_FILE}.tmp-*"):
                stale.unlink(missing_ok=True)
        try:
            self.storage = AtomicJSONStorage(self.state_dir / STATE_FILE, readonly=readonly)
            self._db = TinyDB(storage=lambda: self.storage)
            # TinyDB's per-table query cache is useless to us (we look up by id) and costs memory.
            self._meetings = self._db.table("meetings", cache_size=0)
            self._pending = self._db.table("pending", cache_size=0)
            self._failures = self._db.table("failures", cache_size=0)
            self._meta_table = self._db.table("meta", cache_size=0)
            self._check_format()
        except BaseException:
            self.close()
            raise

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path) -> "SnapshotStore":
        return cls(state_dir)

    @classmethod
    def open_readonly(cls, state_dir: Path) -> "SnapshotStore":
        return cls(state_dir, readonly=True)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> "SnapshotStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def commit(self) -> bool:
        """One atomic write of everything changed since the last commit."""
        return self.storage.flush()

    @property
    def writes(self) -> int:
        return self.storage.writes

    def _check_format(self) -> None:
        meta = self.meta()
        version = meta.get("format", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise StateCorrupt(f"{self.storage.path}: state format {version!r}, this version "
                               f"reads {FORMAT_VERSION}")

    # -- meta ----------------------------------------------------------------------------------

    def meta(self) -> dict:
        doc = self._meta_table.get(doc_id=1)
        return dict(doc) if doc else {}

    def update_meta(self, **values: Any) -> None:
        current = self.meta()
        current.update(values, format=FORMAT_VERSION)
        if self._meta_table.contains(doc_id=1):
            self._meta_table.update(lambda doc: doc.update(current), doc_ids=[1])
        else:
            self._meta_table.insert(Document(current, doc_id=1))

    @property
    def is_new(self) -> bool:
        """True until the first (baseline) cycle committed."""
        return not self.meta().get("baseline_done", False)

    @property
    def cursor(self) -> str | None:
        return self.meta().get("cursor")

    # -- meetings ------------------------------------------------------------------------------

    def meeting(self, meeting_id: str) -> dict | None:
        doc = self._meetings.get(doc_id=meeting_doc_id(meeting_id))
        return doc  # a Document (dict); treat as read-only

    def meetings(self) -> Iterator[dict]:
        return iter(self._meetings.all())

    def meeting_count(self) -> int:
        return len(self._meetings)

    def upcoming_count(self, now: dt.datetime) -> int:
        """Tracked meetings that start after ``now`` and were not deleted. O(n): for guards,
        which run only when a cycle plans many cancels."""
        after = stamp(now)
        return sum(1 for m in self._meetings.all() if m.get("start", "") > after
                   and not m.get("deleted"))

    def put_meetings(self, docs: Iterable[dict]) -> None:
        """Insert or replace meeting docs (each has ``id``), in two passes over the table."""
        docs = list(docs)
        _put(self._meetings, docs)
        if self._booking_links is not None:
            for doc in docs:
                self._link(doc["id"], None if doc.get("deleted") else doc.get("booking_id"))

    def remove_meetings(self, meeting_ids: Iterable[str]) -> None:
        ids = [meeting_doc_id(m) for m in meeting_ids]
        existing = [i for i in ids if self._meetings.contains(doc_id=i)]
        if existing:
            self._meetings.remove(doc_ids=existing)
            if self._booking_links is not None:
                for doc_id in existing:
                    self._link(str(doc_id), None)

    # -- which meetings carry which booking id -------------------------------------------------

    def meetings_linked_to(self, booking_id: str) -> set[str]:
        """The tracked, not deleted meetings whose booking-id field holds ``booking_id``."""
        return set(self._links().get(booking_id, ()))

    def conflicts(self) -> dict[str, list[str]]:
        """Booking ids on more than one tracked meeting → those meetings (a CRM clone…)."""
        links = self._links()
        return {b: sorted(links[b]) for b in self._conflicted}

    def _links(self) -> dict[str, set[str]]:
        """booking id → meeting ids, built once per process (O(n)), then kept up to date."""
        if self._booking_links is None:
            self._booking_links, self._booking_of, self._conflicted = {}, {}, set()
            for doc in self._meetings.all():
                if not doc.get("deleted") and doc.get("booking_id"):
                    self._link(doc["id"], doc["booking_id"])
        return self._booking_links

    def _link(self, meeting_id: str, booking_id: str | None) -> None:
        old = self._booking_of.pop(meeting_id, None)
        if old is not None:
            ids = self._booking_links[old]
            ids.discard(meeting_id)
            if len(ids) <= 1:
                self._conflicted.discard(old)
            if not ids:
                del self._booking_links[old]
        if booking_id:
            self._booking_of[meeting_id] = booking_id
            ids = self._booking_links.setdefault(booking_id, set())
            ids.add(meeting_id)
            if len(ids) > 1:
                self._conflicted.add(booking_id)

    # -- pending actions -----------------------------------------------------------------------

    def pending(self) -> dict[str, dict]:
        return {doc["meeting_id"]: dict(doc) for doc in self._pending.all()}

    def pending_count(self) -> int:
        return len(self._pending)

    def put_pending(self, docs: Iterable[dict]) -> None:
        _put(self._pending, docs, key="meeting_id")

    def remove_pending(self, meeting_ids: Iterable[str]) -> None:
        ids = [i for i in map(meeting_doc_id, meeting_ids) if self._pending.contains(doc_id=i)]
        if ids:
            self._pending.remove(doc_ids=ids)

    # -- failures ------------------------------------------------------------------------------

    def failures(self) -> dict[str, dict]:
        return {doc["meeting_id"]: dict(doc) for doc in self._failures.all()}

    def failure(self, meeting_id: str) -> dict | None:
        return self._failures.get(doc_id=meeting_doc_id(meeting_id))

    def put_failures(self, docs: Iterable[dict]) -> None:
        _put(self._failures, docs, key="meeting_id")

    def remove_failures(self, meeting_ids: Iterable[str]) -> None:
        ids = [i for i in map(meeting_doc_id, meeting_ids) if self._failures.contains(doc_id=i)]
        if ids:
            self._failures.remove(doc_ids=ids)

    # -- the last cycle (for `status`) ---------------------------------------------------------

    def record_cycle(self, summary: dict) -> None:
        """Kept beside the state file: rewriting 100,000 meetings to say "idle" would be waste."""
        atomic_write_json(self.state_dir / LAST_CYCLE_FILE, summary)

    def last_cycle(self) -> dict | None:
        try:
            with open(self.state_dir / LAST_CYCLE_FILE, "rb") as fh:
                return json.load(fh)
        except (FileNotFoundError, ValueError):
            return None

    # -- housekeeping --------------------------------------------------------------------------

    def prune(self, before: dt.datetime) -> int:
        """Forget meetings that ended before ``before`` and have nothing pending. O(n): the caller
        runs it rarely (once a day), never on an idle cycle's hot path."""
        cutoff = stamp(before)
        pending = self._pending
        old = [doc.doc_id for doc in self._meetings.all()
               if (doc.get("end") or doc.get("start") or "9") < cutoff
               and not pending.contains(doc_id=doc.doc_id)]
        if old:
            self.remove_meetings(str(i) for i in old)
            failed = [i for i in old if self._failures.contains(doc_id=i)]
            if failed:
                self._failures.remove(doc_ids=failed)
        return len(old)


def _put(table, docs: Iterable[dict], *, key: str = "id") -> None:
    """Upsert by id with one update pass and one insert pass (TinyDB rebuilds the table dict on
    every write call, so per-document calls would be O(n) each)."""
    by_id: dict[int, dict] = {}
    for doc in docs:
        # None is the default of every field: leaving it out keeps a 100k-meeting file small.
        by_id[meeting_doc_id(doc[key])] = {k: v for k, v in doc.items() if v is not None}
    if not by_id:
        return
    existing = [i for i in by_id if table.contains(doc_id=i)]
    if existing:
        def replace(doc: dict) -> None:
            new = by_id[meeting_doc_id(doc[key])]
            doc.clear()
            doc.update(new)
        table.update(replace, doc_ids=existing)
    fresh = [Document(by_id[i], doc_id=i) for i in by_id.keys() - set(existing)]
    if fresh:
        table.insert_multiple(fresh)


def _lock(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLocked(f"{state_dir}: another bookings-sync process is using this state "
                          f"directory (lock held on {state_dir / LOCK_FILE})") from None
    return fd
