"""The snapshot store: what the daemon last saw of each meeting, the cursor, pending actions and
recorded failures — TinyDB tables persisted in the state directory by
:mod:`bookings_sync.store_journal` (a base file plus a journal of changed rows).

Promises:
- **Atomic, and in proportion to change**: nothing reaches disk until :meth:`SnapshotStore.commit`;
  a commit appends one fsynced journal record holding the rows this store was asked to put or
  remove since the last one, so a kill -9 at any instant leaves either the old or the new state,
  and one moved meeting costs about a kilobyte whatever the snapshot's size.
- **One writer**: :meth:`SnapshotStore.open` takes an exclusive ``flock`` on ``state_dir/lock``;
  a second writer gets :class:`StateLocked`. Readers (``status``) open read-only with no lock and
  always load one committed state (see :mod:`bookings_sync.store_journal`).
- **Private**: the store's files are created 0600 (files an older version left 0644 are
  narrowed when a writer opens them), and a state directory the store creates is 0700.
- **Fast at 100,000 meetings**: documents are keyed by the CRM id (TinyDB ``doc_id``), so a lookup
  is a dict access, and a write touches only its rows (:class:`RowTable`), so a cycle that
  commits every 20 actions costs the same over 1,000 meetings as over 100,000.
- **Old state loads**: a format-1 ``state.json`` (before the journal) is read as it is and
  rewritten in the new format by the first commit; ``meta.format`` becomes 2 so that an older
  bookings-sync refuses the directory instead of reading the base without its journal.
- **Fails loudly, never beside another writer**: a commit first checks that the state directory
  is still the one whose lock this process holds (it may have been deleted, or replaced by a
  new one that another process could lock); that, and a write the disk refuses (full,
  read-only, gone), raise :class:`StateUnwritable` with one line — the state on disk stays the
  last committed one, and the caller must stop: its in-memory state is ahead of the disk.
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
from collections.abc import MutableMapping
from typing import Any, Iterable, Iterator

from tinydb import TinyDB
from tinydb.table import Document, Table

from bookings_sync.atomic import write_atomically
from bookings_sync.store_journal import JOURNAL_FILE, STATE_FILE, JournalStorage, StateCorrupt

__all__ = ["SnapshotStore", "StateLocked", "StateCorrupt", "atomic_write_json", "STATE_FILE",
           "JOURNAL_FILE", "LAST_CYCLE_FILE", "LOCK_FILE", "FORMAT_VERSION", "stamp", "parse_stamp",
           "StateUnwritable"]

LAST_CYCLE_FILE = "last-cycle.json"
LOCK_FILE = "lock"
FORMAT_VERSION = 2              # 2: base + journal. 1 (one state.json) still loads.
READABLE_FORMATS = (1, FORMAT_VERSION)
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


class StateUnwritable(Exception):
    """The state directory cannot take this commit (vanished, replaced, unwritable, full)."""


def atomic_write_json(path: Path, data: Any, *, mode: int = 0o644) -> None:
    """Write ``data`` as JSON to ``path`` so that readers and crashes see old or new, never half.
    0644 by default: ``retry`` requests are written from an operator's shell for the daemon's
    user to read. The store's own files pass 0600."""
    write_atomically(path, json.dumps(data, separators=(",", ":")).encode("utf-8"), mode=mode)


def is_crm_id(value) -> bool:
    """Zoho's record ids are ASCII digit strings without a leading zero ("4876876000000412345").
    Anything else could name a record of ours without being it ("0" + an id is the same number,
    so the same doc id): such a value is never a key."""
    return (isinstance(value, str) and value.isascii() and value.isdigit()
            and not value.startswith("0"))


def meeting_doc_id(meeting_id: str) -> int:
    """CRM record ids are numeric strings (:func:`is_crm_id`); they are our doc ids."""
    if not is_crm_id(meeting_id):
        raise ValueError(f"CRM record id {meeting_id!r} is not a numeric string")
    return int(meeting_id)


class SnapshotStore:
    """Narrow API over the TinyDB file; callers never see TinyDB.

    Tables: ``meetings`` (one doc per booking-linked meeting), ``pending`` (actions recorded
    before they run), ``failures`` (refusals waiting for the meeting to change or a ``retry``),
    ``requests`` (meetings ticked to be booked, and how far each got), ``meta`` (a single doc:
    cursor, last cycle, counters).
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
            _tidy(self.state_dir)
        self.storage: JournalStorage | None = None
        try:
            self.storage = JournalStorage(self.state_dir, readonly=readonly)
            self._db = _Db(storage=lambda: self.storage)
            # TinyDB's per-table query cache is useless to us (we look up by id) and costs memory.
            self._meetings = self._db.table("meetings", cache_size=0)
            self._pending = self._db.table("pending", cache_size=0)
            self._failures = self._db.table("failures", cache_size=0)
            self._requests = self._db.table("requests", cache_size=0)
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
        if self.storage is not None:
            self.storage.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> "SnapshotStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def commit(self) -> bool:
        """Make everything changed since the last commit durable, atomically. Returns whether
        anything was written; raises :class:`StateUnwritable` (see the module docstring)."""
        if self._booking_links is not None:
            now = {b: sorted(self._booking_links[b]) for b in sorted(self._conflicted)}
            if self.meta().get("conflicts") != now:
                self.update_meta(conflicts=now)
        if not self.storage.dirty:
            return False
        self.check_still_ours()
        if self.meta().get("format") != FORMAT_VERSION:
            self.update_meta()   # a format-1 state being migrated: older versions must refuse it
        try:
            return self.storage.flush()
        except OSError as exc:
            raise StateUnwritable(self._cannot_write(exc)) from None

    def check_still_ours(self) -> None:
        """Raise :class:`StateUnwritable` unless ``state_dir/lock`` is still the file this
        writer locked: a deleted or replaced directory must not get a second writer."""
        try:
            on_disk = os.stat(self.state_dir / LOCK_FILE)
        except OSError:
            raise StateUnwritable(f"{self.state_dir}: the state directory vanished while this "
                                  f"process held it") from None
        held = os.fstat(self._lock_fd)
        if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            raise StateUnwritable(f"{self.state_dir}: the state directory was replaced while "
                                  f"this process held it")

    def _cannot_write(self, exc: OSError) -> str:
        return (f"{self.state_dir}: cannot write the state ({exc.strerror or exc}); the state "
                f"on disk is the last one committed")

    @property
    def writes(self) -> int:
        """Commits that wrote something."""
        return self.storage.writes

    @property
    def bytes_written(self) -> int:
        """Bytes this store wrote to the state directory (journal records and base rewrites)."""
        return self.storage.bytes_written

    def _check_format(self) -> None:
        meta = self.meta()
        version = meta.get("format", FORMAT_VERSION)
        if version not in READABLE_FORMATS:
            raise StateCorrupt(f"{self.storage.path}: state format {version!r}, this version "
                               f"reads {' and '.join(map(str, READABLE_FORMATS))}")

    # -- meta ----------------------------------------------------------------------------------

    def meta(self) -> dict:
        doc = self._meta_table.get(doc_id=1)
        return dict(doc) if doc else {}

    def update_meta(self, **values: Any) -> None:
        current = self.meta()
        current.update(values, format=FORMAT_VERSION)
        with self.storage.changing("meta", [1]):
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
        """Every tracked meeting's row, as stored: read-only."""
        return (row for _, row in self._meetings.rows())

    def meeting_count(self) -> int:
        return len(self._meetings)

    def upcoming_count(self, now: dt.datetime) -> int:
        """Tracked meetings that start after ``now`` and were not deleted. O(n): for guards,
        which run only when a cycle plans many cancels."""
        after = stamp(now)
        return sum(1 for _, m in self._meetings.rows() if m.get("start", "") > after
                   and m.get("booking_id") and not m.get("deleted"))

    def put_meetings(self, docs: Iterable[dict]) -> None:
        """Insert or replace meeting docs (each has ``id``), in two passes over the table."""
        docs = list(docs)
        if docs:
            self._links()        # the saved conflicts are about to change: keep them exact
        self._put(self._meetings, docs)
        for doc in docs:
            self._link(doc["id"], None if doc.get("deleted") else doc.get("booking_id"))

    def remove_meetings(self, meeting_ids: Iterable[str]) -> None:
        meeting_ids = list(meeting_ids)
        if meeting_ids:
            self._links()
        self._remove(self._meetings, meeting_ids)
        for meeting_id in meeting_ids:
            self._link(meeting_id, None)

    # -- which meetings carry which booking id -------------------------------------------------

    def meetings_linked_to(self, booking_id: str) -> set[str]:
        """The tracked, not deleted meetings whose booking-id field holds ``booking_id``."""
        return set(self._links().get(booking_id, ()))

    def conflicts(self) -> dict[str, list[str]]:
        """Booking ids on more than one tracked meeting → those meetings (a CRM clone…). Every
        cycle asks, so the answer is saved with each commit (meta ``conflicts``) and read back
        while this process has changed no meeting: an idle cycle never walks the snapshot."""
        if self._booking_links is None:
            saved = self.meta().get("conflicts")
            if isinstance(saved, dict):
                return {booking: list(ids) for booking, ids in saved.items()}
        links = self._links()
        return {b: sorted(links[b]) for b in sorted(self._conflicted)}

    def _links(self) -> dict[str, set[str]]:
        """booking id → meeting ids, built once per process (O(n)), then kept up to date."""
        if self._booking_links is None:
            self._booking_of = {row["id"]: row["booking_id"] for _, row in self._meetings.rows()
                                if row.get("booking_id") and not row.get("deleted")}
            links: dict[str, set[str]] = {}
            for meeting_id, booking_id in self._booking_of.items():
                ids = links.get(booking_id)
                if ids is None:
                    links[booking_id] = {meeting_id}
                else:
                    ids.add(meeting_id)
            self._booking_links = links
            self._conflicted = {b for b, ids in links.items() if len(ids) > 1}
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
        return {row["meeting_id"]: dict(row) for _, row in self._pending.rows()}

    def pending_count(self) -> int:
        return len(self._pending)

    def put_pending(self, docs: Iterable[dict]) -> None:
        self._put(self._pending, docs, key="meeting_id")

    def remove_pending(self, meeting_ids: Iterable[str]) -> None:
        self._remove(self._pending, meeting_ids)

    # -- failures ------------------------------------------------------------------------------

    def failures(self) -> dict[str, dict]:
        return {row["meeting_id"]: dict(row) for _, row in self._failures.rows()}

    def failure(self, meeting_id: str) -> dict | None:
        return self._failures.get(doc_id=meeting_doc_id(meeting_id))

    def put_failures(self, docs: Iterable[dict]) -> None:
        self._put(self._failures, docs, key="meeting_id")

    def remove_failures(self, meeting_ids: Iterable[str]) -> None:
        self._remove(self._failures, meeting_ids)

    # -- booking requests (meetings ticked "book in Bookings") ---------------------------------

    def requests(self) -> dict[str, dict]:
        return {row["meeting_id"]: dict(row) for _, row in self._requests.rows()}

    def request(self, meeting_id: str) -> dict | None:
        return self._requests.get(doc_id=meeting_doc_id(meeting_id))

    def put_requests(self, docs: Iterable[dict]) -> None:
        self._put(self._requests, docs, key="meeting_id")

    # -- the last cycle (for `status`) ---------------------------------------------------------

    def record_cycle(self, summary: dict) -> None:
        """Kept beside the state file: rewriting 100,000 meetings to say "idle" would be waste."""
        try:
            atomic_write_json(self.state_dir / LAST_CYCLE_FILE, summary, mode=0o600)
        except OSError as exc:
            raise StateUnwritable(self._cannot_write(exc)) from None

    def last_cycle(self) -> dict | None:
        """The last cycle's summary, or None when there is none or it is damaged (it is only
        information: a damaged one must not stop ``status``)."""
        try:
            with open(self.state_dir / LAST_CYCLE_FILE, "rb") as fh:
                summary = json.load(fh)
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    # -- housekeeping --------------------------------------------------------------------------

    def prune(self, before: dt.datetime, settled: Iterable[str] = ()) -> int:
        """Forget meetings that ended before ``before`` and have nothing pending, and booking
        requests in a ``settled`` state since then. O(n): the caller runs it rarely (once a
        day), never on an idle cycle's hot path."""
        cutoff = stamp(before)
        pending = self._pending
        old = [int(doc_id) for doc_id, row in self._meetings.rows()
               if (row.get("end") or row.get("start") or "9") < cutoff
               and not pending.contains(doc_id=int(doc_id))]
        if old:
            self.remove_meetings(str(i) for i in old)
            failed = [i for i in old if self._failures.contains(doc_id=i)]
            if failed:
                with self.storage.changing("failures", failed):
                    self._failures.remove(doc_ids=failed)
        # Booking requests settled (linked or refused) that long ago: their meetings are past.
        settled = set(settled)
        self._remove(self._requests, [
            row["meeting_id"] for doc_id, row in self._requests.rows()
            if row.get("state") in settled and row.get("at", "9") < cutoff
            and not pending.contains(doc_id=int(doc_id))])
        return len(old)

    # -- writing rows: every change is named to the storage, which journals just those rows ----

    def _put(self, table, docs: Iterable[dict], *, key: str = "id") -> None:
        """Upsert by id: one update call for the rows that exist, one insert for the rest
        (each touches only those rows: :class:`RowTable`)."""
        by_id: dict[int, dict] = {}
        for doc in docs:
            # None is the default of every field: leaving it out keeps a 100k-meeting file small.
            by_id[meeting_doc_id(doc[key])] = {k: v for k, v in doc.items() if v is not None}
        if not by_id:
            return
        existing = [i for i in by_id if table.contains(doc_id=i)]
        with self.storage.changing(table.name, by_id):
            if existing:
                def replace(doc: dict) -> None:
                    new = by_id[meeting_doc_id(doc[key])]
                    doc.clear()
                    doc.update(new)
                table.update(replace, doc_ids=existing)
            fresh = [Document(by_id[i], doc_id=i) for i in by_id.keys() - set(existing)]
            if fresh:
                table.insert_multiple(fresh)

    def _remove(self, table, meeting_ids: Iterable[str]) -> None:
        ids = [i for i in map(meeting_doc_id, meeting_ids) if table.contains(doc_id=i)]
        if ids:
            with self.storage.changing(table.name, ids):
                table.remove(doc_ids=ids)


class _IntKeys(MutableMapping):
    """A stored table (``str`` doc id → row) as TinyDB's write operations see it (``int`` ids),
    without copying it: each key is converted as it is touched."""

    def __init__(self, raw: dict):
        self.raw = raw

    def __getitem__(self, doc_id):
        return self.raw[str(doc_id)]

    def __setitem__(self, doc_id, row) -> None:
        self.raw[str(doc_id)] = row

    def __delitem__(self, doc_id) -> None:
        del self.raw[str(doc_id)]

    def __contains__(self, doc_id) -> bool:
        return str(doc_id) in self.raw

    def __iter__(self):
        return map(int, list(self.raw))

    def __len__(self) -> int:
        return len(self.raw)


class RowTable(Table):
    """A TinyDB table whose writes cost what they touch. TinyDB's own ``_update_table`` copies
    the whole table into an int-keyed dict and back on every insert, update or remove (its
    docstring says why: storages may turn keys into strings); at 100,000 meetings that is
    ~0.1 s per write, and a cycle commits every 20 actions. Our storage keeps the tables in
    memory with ``str`` keys, so the same operations run on a view that converts each key
    as it is used. Reads by ``doc_id`` are TinyDB's own (already a dict lookup); walks over
    every row use :meth:`rows`, which does not copy each row into a ``Document`` as
    ``all()`` does (0.5 s at 100,000 meetings)."""

    def rows(self) -> Iterator[tuple[str, dict]]:
        """(doc id, row) of every stored row, the rows themselves: read-only."""
        return iter(list((self._storage.read() or {}).get(self.name, {}).items()))

    def _update_table(self, updater) -> None:
        tables = self._storage.read() or {}
        updater(_IntKeys(tables.setdefault(self.name, {})))
        self._storage.write(tables)
        self.clear_cache()


class _Db(TinyDB):
    table_class = RowTable


def _tidy(state_dir: Path) -> None:
    """Writer start-up, under the lock: sweep temp files a killed writer left (nobody owns them
    now) and narrow store files an older version created 0644."""
    for name in (STATE_FILE, JOURNAL_FILE, LAST_CYCLE_FILE):
        for stale in state_dir.glob(f".{name}.tmp-*"):
            stale.unlink(missing_ok=True)
        path = state_dir / name
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except FileNotFoundError:
            pass


def _lock(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLocked(f"{state_dir}: another bookings-sync process is using this state "
                          f"directory (lock held on {state_dir / LOCK_FILE})") from None
    return fd
