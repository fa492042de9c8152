"""The snapshot store's files: a base file plus an append-only journal of changed rows.

A TinyDB storage (:class:`JournalStorage`) that keeps the whole database in memory and makes a
commit cost what changed, not what is stored.

Files in the state directory (both created 0600):

- ``state.json`` — the *base*: TinyDB's JSON layout (``{table: {doc_id: row}}``) plus a header
  ``"_store": {"format": 2, "generation": G}``. Replaced only whole (temp file, fsync,
  ``os.replace``, fsync of the directory). A format-1 file (no ``_store``: what bookings-sync
  wrote before the journal) is generation 0 and is rewritten as a base at the first commit.
- ``state.journal`` — one line per record, each ``<json>\\t<crc32 of json, 8 hex>\\n``. The first
  line is the header ``{"journal": "bookings-sync", "generation": G}``: the journal applies only
  to the base of the same generation. Each later line is one commit,
  ``{"seq": n, "put": {table: {doc_id: row}}, "del": {table: [doc_id, ...]}}`` with ``seq``
  counting 1, 2, 3 ... Rows are whole, so a record sets rows rather than editing them.

Promises:

- **A commit is one record**: appended with ``pwrite`` and made durable with ``fdatasync``
  before :meth:`JournalStorage.flush` returns. Its size is that of the changed rows (the caller
  names them with :meth:`JournalStorage.changing`; nothing diffs the table).
- **Torn tails are dropped, nothing else is**: loading replays records in order and stops at the
  first line that is incomplete, fails its checksum or breaks the ``seq`` count — what a kill -9
  or power loss in the middle of an append leaves. A writer logs one warning
  (``store.journal_torn``: the file and the bytes dropped) and cuts the tail off before its
  first append. A damaged record *followed by a valid one* is not a torn tail but a damaged
  file: :class:`StateCorrupt`.
- **Compaction** when the journal exceeds ``max(COMPACT_MIN_BYTES, size of the base)`` (4 MiB,
  or about one snapshot): write base G+1 (all state) atomically, then replace the journal with
  an empty one of generation G+1 (temp file, fsync, rename, fsync of the directory). A crash
  before the base's rename leaves base G + journal G; after it, base G+1 + journal G, which
  loading recognises as stale (G < G+1) and ignores: base G+1 already holds it. No instant
  loses a record or applies one twice. The bound keeps base rewrites to at most about one byte
  per journal byte, and a load to replaying at most about one snapshot's worth of records.
- **Readers need no lock**: a reader reads the base through one descriptor (a replaced file is
  a new inode; the one it opened never changes) and then the journal. A journal of an older
  generation is ignored (the base includes it); one of a newer generation means a compaction
  ran in between, so the reader starts again. A reader stops quietly at an incomplete tail: it
  may be an append in progress. Either way it sees one committed state.
- **Memory**: the base is written in chunks of rows and the journal replayed line by line, so
  neither adds a second copy of the snapshot to peak memory.

Choices (nothing to follow elsewhere): readers do not warn about a torn tail (they cannot tell
a crash from an append in progress; the daemon's next start does); a compaction that fails
after its commit's record is durable (a full disk) is logged as ``store.compaction_failed`` and
retried at the next commit rather than failing the commit; a journal without its base, or newer
than it (a base restored from a backup), is refused rather than guessed at.
"""

from __future__ import annotations

import json
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import structlog
from tinydb.storages import Storage

from bookings_sync.atomic import write_all, write_atomically

log = structlog.get_logger("bookings_sync.store")

STATE_FILE = "state.json"
JOURNAL_FILE = "state.journal"
STORAGE_FORMAT = 2
COMPACT_MIN_BYTES = 4 << 20      # read at each commit: tests lower it to compact often
READ_ATTEMPTS = 20               # a reader that keeps losing the race to compactions gives up
_HEADER_KEY = "_store"
_JOURNAL_MAGIC = "bookings-sync"


class StateCorrupt(Exception):
    """The state file exists but cannot be read (hand-edited, wrong program, disk fault)."""


def _line(obj: Any) -> bytes:
    payload = json.dumps(obj, separators=(",", ":")).encode()   # ASCII: no raw tab or newline
    return b"%s\t%08x\n" % (payload, zlib.crc32(payload))


_NOT_A_RECORD = object()


def _parse_line(line: bytes) -> Any:
    """What one journal line holds, or ``_NOT_A_RECORD`` if it is not whole and intact."""
    if not line.endswith(b"\n"):
        return _NOT_A_RECORD
    payload, tab, crc = line[:-1].rpartition(b"\t")
    try:
        if not tab or len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
            return _NOT_A_RECORD
        return json.loads(payload)
    except ValueError:
        return _NOT_A_RECORD


def _is_record(obj: Any, seq: int) -> bool:
    return (isinstance(obj, dict) and obj.get("seq") == seq
            and isinstance(obj.get("put", {}), dict) and isinstance(obj.get("del", {}), dict)
            and all(isinstance(rows, dict) for rows in obj.get("put", {}).values())
            and all(isinstance(ids, list) for ids in obj.get("del", {}).values()))


class JournalStorage(Storage):
    """TinyDB storage held in memory; :meth:`flush` persists the rows named by :meth:`changing`."""

    def __init__(self, state_dir: Path, *, readonly: bool = False):
        self.base_path = Path(state_dir) / STATE_FILE
        self.journal_path = Path(state_dir) / JOURNAL_FILE
        self.path = self.base_path            # what error messages name
        self.readonly = readonly
        self.writes = 0           # commits that wrote something (benchmarks count these)
        self.bytes_written = 0    # bytes written to the state directory, compactions included
        self.compactions = 0
        self._changed: dict[str, set[str]] = {}
        self._untracked = False   # TinyDB wrote without being told which rows: rewrite the base
        self._announced = False   # inside changing(): TinyDB's writes are accounted for
        self._fd: int | None = None   # the journal, open for appending (writer only)
        for attempt in range(READ_ATTEMPTS):
            if self._load(last_attempt=attempt == READ_ATTEMPTS - 1):
                break

    # -- TinyDB's storage interface -----------------------------------------------------------

    def read(self) -> dict | None:
        return self._data

    def write(self, data: dict) -> None:
        # TinyDB calls this on every change; what reaches disk is decided at flush().
        self._data = data
        if not self._announced:
            self._untracked = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- what SnapshotStore uses --------------------------------------------------------------

    @contextmanager
    def changing(self, table: str, doc_ids: Iterable[int | str]) -> Iterator[None]:
        """Around a TinyDB call that puts or removes exactly these rows: the next record holds
        them. A TinyDB write outside such a block makes the next flush rewrite the base (correct,
        only slower) rather than miss a change."""
        if self._generation == 0:
            # No base of this format yet: the next flush writes one whole, so naming rows would
            # only cost memory (100,000 ids at a first run: 11 MB).
            self._untracked = True
        else:
            self._changed.setdefault(table, set()).update(map(str, doc_ids))
        self._announced = True
        try:
            yield
        finally:
            self._announced = False

    @property
    def dirty(self) -> bool:
        return bool(self._changed) or self._untracked

    def flush(self) -> bool:
        """Persist what changed: one journal record, or a new base when there is none yet, the
        base is format 1, or the journal has outgrown its bound. Returns whether anything was
        written."""
        if not self.dirty:
            return False
        if self.readonly:
            raise RuntimeError("read-only store cannot be written")
        if self._untracked or self._generation == 0:
            self._compact()
        else:
            self._append(self._record())
            if self._journal_end > max(COMPACT_MIN_BYTES, self._base_bytes):
                try:
                    self._compact()
                except OSError as exc:
                    # The commit is already durable in the journal; compaction retries next time.
                    log.warning("store.compaction_failed", file=str(self.base_path), error=str(exc))
        self._changed = {}
        self._untracked = False
        self.writes += 1
        return True

    def compact(self) -> None:
        """Rewrite the base now and start an empty journal (flush() does this by itself when the
        journal outgrows its bound). Only committed state may reach the base."""
        if self.dirty:
            raise RuntimeError("commit before compacting")
        if self.readonly:
            raise RuntimeError("read-only store cannot be written")
        self._compact()

    # -- loading ------------------------------------------------------------------------------

    def _load(self, *, last_attempt: bool) -> bool:
        """Base, then the journal of its generation. False: a compaction ran while we read."""
        self._data, self._generation, self._base_bytes = self._read_base()
        self._journal_end: int | None = None   # bytes of a journal that belongs to our base
        self._seq = 0
        self._torn = 0
        try:
            fh = open(self.journal_path, "rb")
        except FileNotFoundError:
            return True
        with fh:   # read line by line: a journal can be as large as the base
            return self._load_journal(fh, last_attempt=last_attempt)

    def _load_journal(self, fh, *, last_attempt: bool) -> bool:
        first = fh.readline()
        header = _parse_line(first)
        if not isinstance(header, dict) or header.get("journal") != _JOURNAL_MAGIC:
            raise StateCorrupt(f"{self.journal_path}: not a bookings-sync journal")
        generation = header.get("generation")
        if self._data is None:
            if self.readonly and not last_attempt:
                return False   # the first commit wrote both files after we looked for the base
            raise StateCorrupt(f"{self.journal_path} exists without {self.base_path}: the base was "
                               f"removed; remove the journal too to start from nothing")
        if not isinstance(generation, int) or generation > self._generation:
            if self.readonly and not last_attempt:
                return False
            raise StateCorrupt(f"{self.journal_path} (generation {generation}) does not belong to "
                               f"{self.base_path} (generation {self._generation})")
        if generation < self._generation:
            return True   # left by a compaction interrupted after the new base: already in it
        self._journal_end = self._replay(fh, len(first))
        return True

    def _read_base(self) -> tuple[dict | None, int, int]:
        try:
            with open(self.base_path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None, 0, 0
        size = len(raw)
        try:
            text = raw.decode("utf-8")
            del raw     # the bytes and the text together would add a snapshot's size to peak RSS
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateCorrupt(f"{self.base_path}: not a bookings-sync state file ({exc})") from None
        del text
        if not isinstance(data, dict):
            raise StateCorrupt(f"{self.base_path}: not a bookings-sync state file "
                               f"(top level is not an object)")
        header = data.pop(_HEADER_KEY, {"format": 1, "generation": 0})
        if not isinstance(header, dict) or header.get("format") not in (1, STORAGE_FORMAT) \
                or not isinstance(header.get("generation"), int):
            raise StateCorrupt(f"{self.base_path}: unknown storage header {header!r}")
        return data, header["generation"], size

    def _replay(self, fh, pos: int) -> int:
        """Apply whole records from ``fh`` (at byte ``pos``); returns where the valid journal
        ends."""
        data = self._data
        for line in fh:
            record = _parse_line(line)
            if not _is_record(record, self._seq + 1):
                self._torn = len(line)
                break
            pos += len(line)
            for table, rows in record.get("put", {}).items():
                data.setdefault(table, {}).update(rows)
            for table, ids in record.get("del", {}).items():
                rows = data.get(table, {})
                for doc_id in ids:
                    rows.pop(doc_id, None)
            self._seq += 1
        if self._torn and not self.readonly:
            for line in fh:
                if _parse_line(line) is not _NOT_A_RECORD:
                    raise StateCorrupt(f"{self.journal_path}: damaged record at byte {pos} with "
                                       f"records after it (a disk fault, not an interrupted write)")
                self._torn += len(line)
            log.warning("store.journal_torn", file=str(self.journal_path), dropped_bytes=self._torn,
                        kept_records=self._seq,
                        hint="the last commit was interrupted; it is ignored and cut off")
        return pos

    # -- writing ------------------------------------------------------------------------------

    def _record(self) -> dict:
        put: dict[str, dict] = {}
        gone: dict[str, list] = {}
        for table, ids in self._changed.items():
            rows = self._data.get(table, {}) if self._data else {}
            for doc_id in sorted(ids):
                if doc_id in rows:
                    put.setdefault(table, {})[doc_id] = rows[doc_id]
                else:
                    gone.setdefault(table, []).append(doc_id)
        record: dict[str, Any] = {"seq": self._seq + 1}
        if put:
            record["put"] = put
        if gone:
            record["del"] = gone
        return record

    def _append(self, record: dict) -> None:
        line = _line(record)
        if self._fd is None:
            self._open_journal()
        end = self._journal_end
        try:
            write_all(self._fd, line, end)
            os.fdatasync(self._fd)
        except BaseException:
            # A half-written record must not stay in front of the next one.
            try:
                os.ftruncate(self._fd, end)
            except OSError:
                pass
            raise
        self._journal_end = end + len(line)
        self._seq += 1
        self.bytes_written += len(line)

    def _open_journal(self) -> None:
        """Open this base's journal for appending, cutting off a torn tail; or start one."""
        if self._journal_end is None:
            self._start_journal()
            return
        self._fd = os.open(self.journal_path, os.O_WRONLY)
        if self._torn:
            os.ftruncate(self._fd, self._journal_end)
            os.fsync(self._fd)
            self._torn = 0

    def _start_journal(self) -> None:
        self.close()
        header = _line({"journal": _JOURNAL_MAGIC, "generation": self._generation})
        self.bytes_written += write_atomically(self.journal_path, header)
        self._fd = os.open(self.journal_path, os.O_WRONLY)
        self._journal_end, self._seq, self._torn = len(header), 0, 0

    def _compact(self) -> None:
        generation = self._generation + 1
        header = {"format": STORAGE_FORMAT, "generation": generation}
        size = write_atomically(self.base_path, _encode_base(header, self._data or {}))
        self.bytes_written += size
        # From here base G+1 is what loads; the old journal is stale until replaced.
        self._generation, self._base_bytes = generation, size
        self._journal_end = None
        self._start_journal()
        self.compactions += 1


def _encode_base(header: dict, tables: dict, rows_per_chunk: int = 5000) -> Iterator[bytes]:
    """The base's JSON in chunks of rows: one string of a 100,000-meeting snapshot and its bytes
    would add 34 MB to peak memory at every compaction."""
    yield b'{"%s":%s' % (_HEADER_KEY.encode(), json.dumps(header).encode())
    for name, rows in tables.items():
        yield b',%s:{' % json.dumps(name).encode()
        ids = list(rows)
        for start in range(0, len(ids), rows_per_chunk):
            chunk = {doc_id: rows[doc_id] for doc_id in ids[start:start + rows_per_chunk]}
            yield (b"," if start else b"") + json.dumps(chunk, separators=(",", ":")).encode()[1:-1]
        yield b"}"
    yield b"}"

