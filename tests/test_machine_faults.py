"""A broken machine: a cycle that crashes, a state directory that vanishes, a full disk. Each
stops with one line and an exit code systemd acts on — never a traceback for the user, never a
daemon that looks healthy while it is not, never a second writer beside the first, and the
state on disk always the last one committed (the next run recovers).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bookings_sync.sandbox import wait_for
from bookings_sync.store import SnapshotStore

from e2e import child_env, future, reschedules, run_once, write_config
from service_proc import Daemon, NotifySocket

HERE = Path(__file__).resolve().parent


def events(log: Path, name: str) -> list[dict]:
    if not log.exists():
        return []
    return [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == name]


def test_a_crashing_cycle_feeds_no_watchdog_and_the_daemon_exits_after_three(sb, tmp_path):
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    log = tmp_path / "daemon.log"
    with NotifySocket(tmp_path / "notify.sock") as notify:
        proc = subprocess.run(
            [sys.executable, str(HERE / "crashing_daemon.py"), str(config), str(log)],
            env=child_env({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"}),
            capture_output=True, text=True, timeout=60)
        while notify.receive(0.05) is not None:
            pass
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr                  # it is in the log, escaped, once each
    assert len(events(log, "cycle.crashed")) == 3 and len(events(log, "daemon.crash_loop")) == 1
    assert "READY=1" in notify.lines and notify.count("WATCHDOG=1") == 0
    assert any("crashed (3 in a row)" in line for line in notify.lines)


def test_a_state_directory_that_vanishes_stops_the_daemon_with_one_line(sb, tmp_path):
    sb.seed(2)
    state = tmp_path / "state"
    config = write_config(sb, state, tmp_path / "sync.toml")
    with Daemon(config, tmp_path / "daemon.log") as daemon:
        assert wait_for(lambda: daemon.events("cycle.end"), 30)
        shutil.rmtree(state)
        assert daemon.proc.wait(timeout=30) == 5
        [line] = daemon.events("state.unwritable")
        assert "vanished" in line["error"]
        assert "Traceback" not in daemon.stderr
    assert not state.exists()                             # nobody wrote beside the old one


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs to fill up (root and mount(2) needed: skipped where not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (4096, 1):                  # pages, then the last bytes
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def test_a_full_disk_is_one_line_the_state_stays_whole_and_the_next_run_recovers(
        sb, tmp_path, tiny_disk):
    (meeting_id, booking_id), _ = sb.book(start=future(3)), sb.book(start=future(4))
    state = tiny_disk / "state"
    config = write_config(sb, state, tmp_path / "sync.toml")
    assert run_once(config).code == 0
    sb.reset_counters()
    sb.crm_move(meeting_id, future(5))
    filler = fill(tiny_disk)
    full = run_once(config)
    assert full.code == 5 and "Traceback" not in full.stderr
    [line] = full.event("state.unwritable")
    assert "No space left on device" in line["error"]
    with SnapshotStore.open_readonly(state) as store:     # the last committed state loads
        assert store.meeting(meeting_id)
    filler.unlink()
    recovered = run_once(config)
    assert recovered.code == 0, recovered.stderr
    assert sb.appointment(booking_id)["start"] == future(5)
    # Whether the disk filled before the write-ahead commit or after the reschedule, the move
    # reached Bookings exactly once.
    assert len(reschedules(sb)) == 1
