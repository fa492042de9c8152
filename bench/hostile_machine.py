"""``make hostile``, class "machine": a broken machine under the daemon.

The state directory removed, or replaced (by an empty one, by a file) under a running daemon (a
read-only remount is refused while the daemon holds files open, and root ignores modes: a full
disk stands for "unwritable"); a full disk (a 256 KiB tmpfs: root and mount(2) needed, else the
case is skipped and says so) under a ``--run-once`` and under the daemon; ``kill -9`` in the
middle of a cycle (while a Bookings or CRM request hangs, and at seeded random instants), then a
clean run; a second writer; a torn journal tail. Handled cleanly: exit 5 with one
``state.unwritable`` line (4 and one line for the second writer), no traceback, nothing written
where the old state was, the state on disk loads, and a clean run converges with no edit applied
twice (after a lost state directory: a new baseline, as documented).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bookings_sync.sandbox import wait_for
from hostile_harness import Case, Harness, Skip, child_env, three


class DaemonProc:
    """``bookings-sync --config X`` (the daemon), JSON logs to a file, as systemd runs it."""

    def __init__(self, h: Harness):
        self.h, self.log = h, h.workdir / "daemon.log"
        self.err_path = h.workdir / "daemon.stderr"
        h.step("$ bookings-sync --config sync.toml --log-format json --log-file daemon.log &")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bookings_sync", "--config", str(h.config_path),
                 "--log-format", "json", "--log-file", str(self.log)],
                env=child_env(), stdout=subprocess.DEVNULL, stderr=err)
        h.cleanups.append(self.kill)

    def events(self, name: str) -> list[dict]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        return [e for e in (json.loads(line) for line in lines if line.startswith("{"))
                if e.get("event") == name]

    def wait_exit(self, expect: int, timeout: float = 40) -> int | None:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.h.problem("hang", f"the daemon still runs {timeout:g} s later (killed)")
            self.kill()
            code = None
        self.h.step(f"  -> daemon exit {code}")
        self.h.expect(code == expect, "exit", f"daemon exit {code}, expected {expect}")
        self.collect()
        return code

    def collect(self) -> None:
        self.h.output("daemon stderr", self.err_path.read_text(errors="replace"))
        if self.log.exists():
            self.h.output("daemon log", self.log.read_text(errors="replace"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def tmpfs(h: Harness, size: str = "256k") -> Path:
    mount = h.workdir / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise Skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    h.cleanups.append(lambda: subprocess.run(["umount", "-l", str(mount)], check=False))
    h.step(f"mount -t tmpfs -o size={size} tmpfs {mount.name}")
    return mount


def fill(h: Harness, disk: Path) -> Path:
    """``disk`` full: dd writes whole pages until the tmpfs refuses (ENOSPC)."""
    filler = disk / "filler"
    h.step(f"dd if=/dev/zero of={disk.name}/filler bs=4096   (until the disk is full)")
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4096"], capture_output=True)
    return filler


def daemon_loses_state(how: str):
    """Under the running daemon the state directory is removed, replaced by an empty one, or
    replaced by a file; then a meeting moves, so the next cycle has something to write."""
    def scenario(h: Harness) -> None:
        three(h, baseline=False)
        daemon = DaemonProc(h)
        if not wait_for(lambda: daemon.events("cycle.end"), 30):
            h.problem("hang", "the daemon ran no cycle within 30 s")
        h.mark_baseline()
        h.step({"removed": "rm -r state", "replaced": "rm -r state; mkdir state",
                "replaced-by-a-file": "rm -r state; echo x > state"}[how])
        shutil.rmtree(h.state_dir)
        if how == "replaced":
            h.state_dir.mkdir()
        elif how == "replaced-by-a-file":
            h.state_dir.write_text("x\n")
        h.act("crm_move", h.meeting("A"), h.at(7))
        daemon.wait_exit(5)
        lines = daemon.events("state.unwritable")
        h.expect(len(lines) == 1, "line", f"{len(lines)} state.unwritable lines, expected one")
        h.expect({"removed": lambda p: not p.exists(),
                  "replaced": lambda p: p.is_dir() and not any(p.iterdir()),
                  "replaced-by-a-file": lambda p: p.is_file() and p.read_text() == "x\n"}[how](
                      h.state_dir), "created-state", "the daemon wrote where its state was")
        if how == "replaced-by-a-file":
            h.step("rm state")
            h.state_dir.unlink()
        h.run_once(0, label="a new baseline")

    return scenario


def disk_full(daemon_mode: bool):
    def scenario(h: Harness) -> None:
        disk = tmpfs(h)
        three(h, baseline=False, state_dir=disk / "state")
        if daemon_mode:
            daemon = DaemonProc(h)
            if not wait_for(lambda: daemon.events("cycle.end"), 30):
                h.problem("hang", "the daemon ran no cycle within 30 s")
        else:
            h.run_once(0, label="baseline")
        h.mark_baseline()
        filler = fill(h, disk)
        h.act("crm_move", h.meeting("A"), h.at(7))
        if daemon_mode:
            daemon.wait_exit(5)
            lines = daemon.events("state.unwritable")
        else:
            lines = h.run_once(5, label="disk full").event("state.unwritable")
        h.expect(len(lines) == 1 and "No space left" in lines[0].get("error", ""), "line",
                 "no single state.unwritable line saying the disk is full")
        h.check_state_loads("with the disk full")
        h.step("rm filler")
        filler.unlink()
        h.status()
        h.clean_phase()

    return scenario


def kill_mid_cycle(path: str, daemon_mode: bool = False):
    """A request to ``path`` hangs 4 s; the process is killed (SIGKILL) while it waits."""
    def scenario(h: Harness) -> None:
        three(h, baseline=False)
        h.run_once(0, label="baseline")
        h.mark_baseline()
        h.act("crm_move", h.meeting("A"), h.at(7))
        h.act("crm_delete", h.meeting("B"))
        h.expect_closed.add(h.booking("B"))
        h.act("inject", path, "stall", 1, stall_seconds=4)
        if daemon_mode:
            proc = DaemonProc(h).proc
        else:
            h.step("$ bookings-sync --config sync.toml --run-once --log-format json &")
            proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config",
                                     str(h.config_path), "--run-once", "--log-format", "json"],
                                    env=child_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            h.cleanups.append(lambda: proc.poll() is None and proc.kill())
        stalled = wait_for(lambda: any(e.get("fault") == "stall" for e in h.sb.request_log), 30)
        h.expect(stalled, "harness", f"no request to {path} within 30 s")
        h.step(f"kill -9 while {path} hangs")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        h.step("wait 4 s: the hanging request completes on the server")
        time.sleep(4)
        h.status()
        h.clean_phase()

    return scenario


def kill_at_random(seed: int):
    def scenario(h: Harness) -> None:
        rng = random.Random(seed)
        h.sandbox()
        pairs = [h.book(f"M{i}", 2 + i / 24, staff=f"s{i}") for i in range(40)]
        h.config()
        h.run_once(0, label="baseline")
        h.mark_baseline()
        for i, (meeting_id, _) in enumerate(pairs):
            h.act("crm_move", meeting_id, h.at(10 + i / 24))
        delay = rng.uniform(0.25, 0.9)
        h.step(f"$ bookings-sync --config sync.toml --run-once --log-format json &  "
               f"(kill -9 after {delay:.3f} s)")
        proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config",
                                 str(h.config_path), "--run-once", "--log-format", "json"],
                                env=child_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        h.step(f"  -> killed after {delay:.3f} s "
               f"({h.sb.calls['bookings.rescheduleappointment']} reschedules had been sent)")
        h.status()
        h.clean_phase()

    return scenario


def second_writer(h: Harness) -> None:
    three(h, baseline=False)
    daemon = DaemonProc(h)
    if not wait_for(lambda: daemon.events("cycle.end"), 30):
        h.problem("hang", "the daemon ran no cycle within 30 s")
    run = h.cli("--config", str(h.config_path), "--run-once", "--log-format", "json",
                expect=4, label="second writer")
    h.expect(len(run.stderr.strip().splitlines()) == 1, "line",
             f"second writer: {len(run.stderr.strip().splitlines())} lines on stderr")
    h.step("kill -TERM daemon")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_exit(0)
    h.mark_baseline()
    h.clean_phase()


def torn_journal(h: Harness) -> None:
    three(h, baseline=False)
    h.run_once(0, label="baseline")
    h.mark_baseline()
    h.act("crm_move", h.meeting("A"), h.at(7))
    h.run_once(0, label="one move")
    journal = h.state_dir / "state.journal"
    h.step("append half a record to state.journal (a torn write)")
    with open(journal, "ab") as fh:
        fh.write(b'{"seq": 99, "put": {"meetings": {"1": {"id": "1", "st')
    h.status()
    h.act("crm_move", h.meeting("B"), h.at(8))
    h.clean_phase()


def cases() -> list[Case]:
    out = [Case("machine", f"machine/state-dir-{how}-under-the-daemon", daemon_loses_state(how))
           for how in ("removed", "replaced", "replaced-by-a-file")]
    out += [Case("machine", "machine/disk-full-run-once", disk_full(False)),
            Case("machine", "machine/disk-full-daemon", disk_full(True)),
            Case("machine", "machine/second-writer", second_writer),
            Case("machine", "machine/torn-journal-tail", torn_journal)]
    for path in ("/crm/v8/Events", "getappointment", "rescheduleappointment",
                 "updateappointment"):
        out.append(Case("machine", f"machine/kill-9-during-{path.strip('/').replace('/', '-')}",
                        kill_mid_cycle(path), slow=True))
    out.append(Case("machine", "machine/kill-9-daemon-during-rescheduleappointment",
                    kill_mid_cycle("rescheduleappointment", daemon_mode=True), slow=True))
    out += [Case("machine", f"machine/kill-9-at-random-{seed}", kill_at_random(seed))
            for seed in range(1, 7)]
    return out
