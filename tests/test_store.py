"""The snapshot store: atomic commits, one writer, lookups by id, bounded size."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bookings_sync.store import SnapshotStore, StateCorrupt, StateLocked


def row(i: int, start="2026-12-01T09:00:00Z", **extra):
    return {"id": str(1000 + i), "booking_id": f"#AN-{i}", "start": start,
            "end": start, "modified": "2026-11-25T10:00:00Z", **extra}


def test_nothing_reaches_disk_until_commit_and_then_exactly_once(tmp_path):
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings([row(1), row(2)])
        store.update_meta(cursor="2026-11-25T10:00:00Z")
        assert not (tmp_path / "state.json").exists()
        assert store.commit() is True and store.writes == 1
        assert store.commit() is False and store.writes == 1     # nothing new: no write
    with SnapshotStore.open_readonly(tmp_path) as again:
        assert again.meeting("1001")["booking_id"] == "#AN-1"
        assert again.cursor == "2026-11-25T10:00:00Z"


def test_upsert_replaces_whole_rows(tmp_path):
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings([row(1, outcome="done")])
        store.put_meetings([row(1, start="2026-12-02T09:00:00Z")])
        assert store.meeting("1001")["start"] == "2026-12-02T09:00:00Z"
        assert "outcome" not in store.meeting("1001")
        assert store.meeting_count() == 1


def test_a_second_writer_is_refused_but_a_reader_is_not(tmp_path):
    with SnapshotStore.open(tmp_path):
        with pytest.raises(StateLocked, match="another bookings-sync process"):
            SnapshotStore.open(tmp_path)
        SnapshotStore.open_readonly(tmp_path).close()
    SnapshotStore.open(tmp_path).close()       # released on close


def test_a_broken_file_is_named_not_a_traceback(tmp_path):
    (tmp_path / "state.json").write_text("{half a file")
    with pytest.raises(StateCorrupt, match="state.json: not a bookings-sync state file"):
        SnapshotStore.open(tmp_path)


def test_prune_forgets_long_past_meetings_but_not_pending_ones(tmp_path):
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings([row(1, start="2026-01-01T09:00:00Z"), row(2, start="2026-01-01T09:00:00Z"),
                            row(3)])
        store.put_pending([{"meeting_id": "1002", "kind": "reschedule"}])
        removed = store.prune(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
        assert removed == 1
        assert store.meeting("1001") is None and store.meeting("1002") and store.meeting("1003")


def test_state_survives_kill_9_at_any_moment_of_a_commit(tmp_path):
    """A child commits a growing store in a loop; we SIGKILL it at random points. The file must
    always load, holding a whole committed generation."""
    script = textwrap.dedent(f"""
        import sys
        from bookings_sync.store import SnapshotStore
        store = SnapshotStore.open({str(tmp_path)!r})
        gen = store.meta().get("gen", 0)
        while True:
            gen += 1
            store.put_meetings([{{"id": str(10_000 + i), "booking_id": "b", "gen": gen}} for i in range(2000)])
            store.update_meta(gen=gen)
            store.commit()
            print(gen, flush=True)
    """)
    delays = [0.05, 0.11, 0.17, 0.23, 0.31, 0.07, 0.19, 0.27]
    for delay in delays:
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        child.stdout.readline()      # one commit landed (a loaded machine may take a while) …
        time.sleep(delay)            # … then the kill falls anywhere in the ones that follow
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        with SnapshotStore.open(tmp_path) as store:
            gen = store.meta().get("gen", 0)
            gens = {m["gen"] for m in store.meetings()}
            assert gens in (set(), {gen}), "a commit was torn"
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["meta"]["1"]["gen"] >= 1
    # A writer that opens the directory sweeps temp files a killed writer left behind.
    SnapshotStore.open(tmp_path).close()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".state.json.tmp")] == []


def test_lookups_stay_by_id_at_100k(tmp_path):
    """Behaviour, not timing: 100,000 rows round-trip and lookups are direct."""
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings(row(i) for i in range(100_000))
        store.commit()
    with SnapshotStore.open(tmp_path) as store:
        assert store.meeting_count() == 100_000
        assert store.meeting(str(1000 + 99_999))["booking_id"] == "#AN-99999"
        assert store.meeting("999999999") is None


class _Unwalkable(dict):
    """A stored table that fails the test if anything walks all of it."""

    def _walked(self, *args):
        raise AssertionError("a write walked the whole table")

    items = keys = values = __iter__ = _walked


def test_a_write_touches_only_its_rows_whatever_the_table_size():
    # TinyDB's own tables copy every row twice per write; a cycle commits every 20 actions, so
    # at 100,000 meetings that would dominate (see RowTable). Inserting, updating, replacing and
    # removing by doc_id must work without walking the table.
    from tinydb import TinyDB
    from tinydb.storages import MemoryStorage
    from tinydb.table import Document

    from bookings_sync.store import RowTable

    class Db(TinyDB):
        table_class = RowTable

    db = Db(storage=MemoryStorage)
    table = db.table("meetings", cache_size=0)
    table.insert_multiple(Document({"n": i}, doc_id=i) for i in range(1, 1001))
    tables = db.storage.read()
    tables["meetings"] = _Unwalkable(tables["meetings"])
    table.insert_multiple([Document({"n": 5000}, doc_id=5000)])
    table.update(lambda doc: doc.update(n=-7), doc_ids=[7])
    table.remove(doc_ids=[9])
    with pytest.raises(ValueError):                       # an existing id is still refused
        table.insert_multiple([Document({"n": 0}, doc_id=1)])
    assert table.get(doc_id=5000)["n"] == 5000 and table.get(doc_id=7)["n"] == -7
    assert table.get(doc_id=9) is None and table.get(doc_id=8)["n"] == 8
    assert dict.__len__(tables["meetings"]) == 1000
