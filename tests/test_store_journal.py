"""The journaled store: commits cost what changed, and no crash, torn write, compaction or racing
reader loses a committed change or shows a half-applied one.

Each test drives the real SnapshotStore on real files. The crash tests replay
``store_workload.step`` and compare what a recovered store holds with the model of the same
steps, so a lost, torn or partly applied commit is a visible difference.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bookings_sync import atomic, store_journal
from bookings_sync.store import SnapshotStore, StateCorrupt, StateUnwritable
from store_workload import Model, mid, snapshot, step

TESTS = Path(__file__).resolve().parent
WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import bookings_sync.store_journal as store_journal
    store_journal.COMPACT_MIN_BYTES = {compact_at}
    from bookings_sync.store import SnapshotStore
    from store_workload import step
    store = SnapshotStore.open({state!r})
    k = store.meta().get("gen", 0)
    while True:
        k += 1
        step(store, k)
        store.commit()
        print(k, store.storage.compactions, flush=True)
""")


def writer(state: Path, *, compact_at: int) -> subprocess.Popen:
    """A child committing ``step`` k = 1, 2, 3 ... as fast as it can, printing each k it
    committed and how many compactions it has done."""
    script = WRITER.format(tests=str(TESTS), state=str(state), compact_at=compact_at)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def acked(child: subprocess.Popen, first: str) -> tuple[int, int]:
    """The last (k, compactions) a killed writer printed whole."""
    lines = (first + child.stdout.read()).splitlines(keepends=True)
    k, compactions = [line for line in lines if line.endswith("\n")][-1].split()
    return int(k), int(compactions)


def commit_steps(state: Path, first: int, last: int) -> None:
    with SnapshotStore.open(state) as store:
        for k in range(first, last + 1):
            step(store, k)
            store.commit()


def load(state: Path, *, readonly=False) -> dict:
    opener = SnapshotStore.open_readonly if readonly else SnapshotStore.open
    with opener(state) as store:
        return snapshot(store)


# -- cost ------------------------------------------------------------------------------------

def test_a_commit_writes_the_changed_rows_not_the_snapshot(tmp_path):
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings({"id": mid(i), "booking_id": f"#AN-{i}", "start": "2026-12-01T09:00:00Z",
                            "end": "2026-12-01T10:00:00Z"} for i in range(20_000))
        store.update_meta(cursor="2026-11-25T10:00:00Z")
        store.commit()
        base = (tmp_path / "state.json").read_bytes()
        assert len(base) > 1_000_000
        before = store.bytes_written
        # One moved meeting, as a cycle's write-ahead commit records it.
        store.put_meetings([{"id": mid(7), "booking_id": "#AN-7", "start": "2026-12-02T09:00:00Z",
                             "end": "2026-12-02T10:00:00Z"}])
        store.put_pending([{"meeting_id": mid(7), "kind": "reschedule"}])
        store.update_meta(cursor="2026-11-25T10:01:00Z")
        assert store.commit() is True
        assert store.bytes_written - before < 1024
        assert (tmp_path / "state.json").read_bytes() == base     # the base is not rewritten
    with SnapshotStore.open_readonly(tmp_path) as again:
        assert again.meeting(mid(7))["start"] == "2026-12-02T09:00:00Z"
        assert again.pending()[mid(7)]["kind"] == "reschedule"
        assert again.cursor == "2026-11-25T10:01:00Z" and again.meeting_count() == 20_000


def test_the_journal_is_folded_into_the_base_once_it_outgrows_its_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(store_journal, "COMPACT_MIN_BYTES", 5000)
    commit_steps(tmp_path, 1, 10)
    journal = tmp_path / "state.journal"
    with SnapshotStore.open(tmp_path) as store:
        for k in range(11, 200):
            step(store, k)
            store.commit()
            bound = max(5000, (tmp_path / "state.json").stat().st_size)
            assert journal.stat().st_size <= bound + 2000     # + the record that crossed it
        assert store.storage.compactions >= 5
    assert load(tmp_path) == Model().at(199)


# -- torn tails ------------------------------------------------------------------------------

def _torn_events(logs):
    return [e for e in logs if e["event"] == "store.journal_torn"]


def recover_then_commit(state: Path, k: int) -> dict:
    """Open as the next writer would (commits 1..k-1 expected), commit k, and check that a
    reopen finds a clean journal. Returns the one torn-tail warning the writer logged."""
    with capture_logs() as logs:
        with SnapshotStore.open(state) as store:
            assert snapshot(store) == Model().at(k - 1)
            step(store, k)
            store.commit()
    [event] = _torn_events(logs)
    with capture_logs() as logs:
        assert load(state) == Model().at(k)
    assert _torn_events(logs) == []
    return event


def test_a_record_cut_short_is_dropped_with_one_warning_and_cut_off_by_the_writer(tmp_path):
    commit_steps(tmp_path, 1, 6)
    journal = tmp_path / "state.journal"
    size = journal.stat().st_size
    os.truncate(journal, size - 10)                       # the last append, interrupted
    torn = journal.read_bytes()
    last_record = len(torn) - torn.rindex(b"\n") - 1

    with capture_logs() as logs:
        assert load(tmp_path, readonly=True) == Model().at(5)    # a reader drops it quietly
    assert _torn_events(logs) == [] and journal.stat().st_size == size - 10
    event = recover_then_commit(tmp_path, 6)
    assert event["log_level"] == "warning"
    assert event["file"] == str(journal) and event["dropped_bytes"] == last_record


def test_garbage_after_the_last_record_is_dropped_and_cut_off(tmp_path):
    """What power loss mid-append can leave: a zero-filled block, a line of nonsense."""
    commit_steps(tmp_path, 1, 4)
    garbage = (b"{\"seq\": 5, \"put\": {}}\tdeadbeef\n\xff\xfe half a line\n" + b"\x00" * 4096)
    with open(tmp_path / "state.journal", "ab") as fh:
        fh.write(garbage)
    assert recover_then_commit(tmp_path, 5)["dropped_bytes"] == len(garbage)


def test_a_damaged_record_with_valid_ones_after_it_is_refused_not_dropped(tmp_path):
    commit_steps(tmp_path, 1, 6)
    journal = tmp_path / "state.journal"
    lines = journal.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"gen"', b'"GEN"', 1)     # record 3 of 6, checksum now wrong
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(StateCorrupt, match=r"state.journal: damaged record at byte \d+ with records"):
        SnapshotStore.open(tmp_path)


def test_a_failed_append_leaves_no_half_record_and_the_commit_can_be_retried(tmp_path, monkeypatch):
    commit_steps(tmp_path, 1, 3)
    with SnapshotStore.open(tmp_path) as store:
        step(store, 4)
        full = OSError(errno.ENOSPC, "No space left on device")
        patch_os(monkeypatch, DyingOS(die_at=1, error=full, only="pwrite"))
        with pytest.raises(StateUnwritable, match="No space left"):
            store.commit()
        patch_os(monkeypatch, os)
        assert store.commit() is True                     # the same changes, whole this time
    with capture_logs() as logs:
        assert load(tmp_path) == Model().at(4)
    assert _torn_events(logs) == []


# -- kill -9 ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_committed_change(tmp_path):
    """A child commits in a loop (compacting every ~30 commits); we SIGKILL it at random
    moments, then open the store as the next writer would."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng, model = random.Random(seed), Model()
    compactions = 0
    for round_no in range(30):
        child = writer(tmp_path, compact_at=20_000)
        first = child.stdout.readline()                  # running: its imports are done
        time.sleep(rng.uniform(0, 0.08))
        child.send_signal(signal.SIGKILL)
        child.wait()
        last_k, compactions_in_round = acked(child, first)
        compactions += compactions_in_round
        with SnapshotStore.open(tmp_path) as store:
            state = snapshot(store)
        assert last_k <= state["gen"] <= last_k + 1, f"seed {seed} round {round_no}"
        assert state == model.at(state["gen"]), f"seed {seed} round {round_no}"
    assert compactions > 0, "no compaction ran: the test did not exercise it"
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []


# -- compaction crash points -----------------------------------------------------------------

def patch_os(monkeypatch, fake) -> None:
    """The store's system calls, as the journal and its atomic writes make them."""
    monkeypatch.setattr(store_journal, "os", fake)
    monkeypatch.setattr(atomic, "os", fake)


class Crash(BaseException):
    """The process died here (BaseException: no handler in the store may swallow it)."""


class DyingOS:
    """``os`` as the store sees it, dying at the ``die_at``-th file system call (of name
    ``only``, if given): a write there lands half its bytes first. Once dead, every later call
    fails too, as in a dead process. With ``error``, that call fails with it instead of dying."""

    CALLS = {"open", "pwrite", "fsync", "fdatasync", "replace", "close", "ftruncate", "unlink"}

    def __init__(self, die_at: int, error: BaseException | None = None, only: str | None = None):
        self.die_at, self.error, self.only, self.calls, self.dead = die_at, error, only, 0, False

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in self.CALLS:
            return real

        def call(*args):
            if self.dead:
                raise Crash
            if self.only and name != self.only:
                return real(*args)
            self.calls += 1
            if self.calls == self.die_at:
                self.dead = self.error is None
                if name == "pwrite":
                    fd, data, offset = args
                    real(fd, bytes(data[:max(1, len(data) // 2)]), offset)
                raise self.error or Crash()
            return real(*args)
        return call


def test_a_crash_between_any_two_system_calls_of_commits_and_compactions_loses_nothing(
        tmp_path, monkeypatch):
    """Commits 6..13 with a small bound compact at least once; die at each system call in turn,
    recover, and check the state, then that the recovered store goes on committing correctly."""
    monkeypatch.setattr(store_journal, "COMPACT_MIN_BYTES", 2000)
    die_at = 0
    while True:
        die_at += 1
        state = tmp_path / f"crash-{die_at}"
        commit_steps(state, 1, 5)
        acked = 5
        dying = DyingOS(die_at)
        store = SnapshotStore.open(state)
        patch_os(monkeypatch, dying)
        try:
            for k in range(6, 14):
                step(store, k)
                store.commit()
                acked = k
        except Crash:
            pass
        finally:
            patch_os(monkeypatch, os)
            compactions = store.storage.compactions
            store.close()                      # what the kernel does for a dead process
        model = Model()
        recovered = load(state)
        assert acked <= recovered["gen"] <= acked + 1, f"died at call {die_at}"
        assert recovered == model.at(recovered["gen"]), f"died at call {die_at}"
        assert not [p for p in os.listdir(state) if ".tmp-" in p]   # the next writer swept them
        commit_steps(state, recovered["gen"] + 1, recovered["gen"] + 3)
        assert load(state) == model.at(recovered["gen"] + 3), f"died at call {die_at}"
        if not dying.dead:
            break                              # the run outlived every call: all were covered
    assert die_at > 20 and compactions >= 1, "the covered commits did not include a compaction"


def test_a_stale_journal_left_by_a_compaction_is_never_replayed(tmp_path):
    """A crash after the new base but before the new journal leaves the old journal beside the
    base that already holds it. Replaying it would put an old row back."""
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings([{"id": mid(1), "booking_id": "#AN-1", "start": "old"}])
        store.commit()
        store.put_meetings([{"id": mid(2), "booking_id": "#AN-2"}])
        store.commit()
        old_journal = (tmp_path / "state.journal").read_bytes()
        store.put_meetings([{"id": mid(1), "booking_id": "#AN-1", "start": "new"}])
        store.remove_meetings([mid(2)])
        store.commit()
        store.storage.compact()
    (tmp_path / "state.journal").write_bytes(old_journal)     # as the crash would leave it
    for opener in (SnapshotStore.open_readonly, SnapshotStore.open):
        with opener(tmp_path) as store:
            assert store.meeting(mid(1))["start"] == "new" and store.meeting(mid(2)) is None


def test_a_base_restored_without_its_journal_is_refused(tmp_path):
    """A journal newer than its base holds changes the base never saw: refuse, don't guess."""
    commit_steps(tmp_path, 1, 3)
    old_base = (tmp_path / "state.json").read_bytes()
    with SnapshotStore.open(tmp_path) as store:
        store.storage.compact()
        step(store, 4)
        store.commit()
    (tmp_path / "state.json").write_bytes(old_base)
    for opener in (SnapshotStore.open_readonly, SnapshotStore.open):
        with pytest.raises(StateCorrupt, match=r"state.journal \(generation 2\) does not belong "
                                               r"to .*state.json \(generation 1\)"):
            opener(tmp_path)


def test_a_journal_without_its_base_is_refused(tmp_path):
    commit_steps(tmp_path, 1, 3)
    (tmp_path / "state.json").unlink()
    with pytest.raises(StateCorrupt, match="state.journal exists without .*state.json"):
        SnapshotStore.open(tmp_path)


# -- readers ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_reader_racing_commits_and_compactions_always_sees_one_committed_state(tmp_path):
    child = writer(tmp_path, compact_at=3000)       # compacts every few commits
    try:
        # Reading from the start also races the first commit, which creates both files.
        model, seen, deadline = Model(), set(), time.monotonic() + 4
        while time.monotonic() < deadline:
            state = load(tmp_path, readonly=True)
            assert state == model.at(state["gen"])          # also: never goes back
            seen.add(state["gen"])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    _, compactions = acked(child, "")
    assert len(seen) > 20 and compactions > 20


# -- old files, permissions ------------------------------------------------------------------

def format_1_file(path: Path) -> bytes:
    """A state.json as bookings-sync wrote it before the journal (TinyDB's layout, format 1)."""
    data = {"meetings": {mid(1): {"id": mid(1), "booking_id": "#AN-1", "start": "2026-12-01T09:00:00Z"},
                         mid(2): {"id": mid(2), "booking_id": "#AN-2", "outcome": "done"}},
            "pending": {mid(2): {"meeting_id": mid(2), "kind": "cancel"}},
            "failures": {mid(1): {"meeting_id": mid(1), "reason": "Slot not available"}},
            "meta": {"1": {"cursor": "2026-11-25T10:00:00Z", "baseline_done": True, "format": 1}}}
    raw = json.dumps(data, separators=(",", ":")).encode()
    path.write_bytes(raw)
    path.chmod(0o644)
    return raw


def test_a_format_1_state_file_loads_and_is_migrated_by_the_first_commit(tmp_path):
    raw = format_1_file(tmp_path / "state.json")
    with SnapshotStore.open_readonly(tmp_path) as store:
        assert store.cursor == "2026-11-25T10:00:00Z" and not store.is_new
    with SnapshotStore.open(tmp_path) as store:
        assert store.meeting(mid(2))["outcome"] == "done"
        assert list(store.pending()) == [mid(2)] and list(store.failures()) == [mid(1)]
        assert store.commit() is False
    assert (tmp_path / "state.json").read_bytes() == raw      # opening alone writes nothing
    with SnapshotStore.open(tmp_path) as store:
        store.put_meetings([{"id": mid(3), "booking_id": "#AN-3"}])
        store.commit()
    data = json.loads((tmp_path / "state.json").read_bytes())
    assert data["_store"] == {"format": 2, "generation": 1}
    # An older bookings-sync reads only state.json: format 2 makes it refuse, not lose the journal.
    assert data["meta"]["1"]["format"] == 2
    with SnapshotStore.open_readonly(tmp_path) as store:
        assert store.meeting_count() == 3 and store.meeting(mid(1))["start"] == "2026-12-01T09:00:00Z"
        assert store.pending()[mid(2)]["kind"] == "cancel" and store.cursor == "2026-11-25T10:00:00Z"


def test_state_files_are_private(tmp_path):
    state = tmp_path / "new-state-dir"
    commit_steps(state, 1, 3)
    with SnapshotStore.open(state) as store:
        store.record_cycle({"outcome": "ok"})
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("state.json", "state.journal", "last-cycle.json", "lock"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    # A state file an older version left world-readable is narrowed by the next writer.
    older = tmp_path / "older"
    older.mkdir()
    format_1_file(older / "state.json")
    SnapshotStore.open(older).close()
    assert stat.S_IMODE((older / "state.json").stat().st_mode) == 0o600
