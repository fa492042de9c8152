"""``make soak``: the daemon against the sandbox under a storm of edits and faults.

The daemon (console script, interval 1 s) runs in a child process; a driver makes random CRM
moves, Bookings-side reschedules and cancellations, slot conflicts, token expiries, 429s (with
and without Retry-After), 500s, dropped connections and stalls — and SIGKILLs and restarts the
daemon. Then the driver stops, the daemon is stopped with SIGTERM, two clean ``--run-once``
cycles run, and the soak checks:

- every booking-linked meeting and its appointment agree, or the disagreement is explained (the
  appointment is closed, or the state file records Bookings' refusal);
- no edit was applied twice (each move targets a time never used before, so two reschedule
  requests with one (booking, start_time) would be a repeat);
- the state file loads; the daemon's memory did not grow across cycles.

    python bench/soak.py [--seconds 300] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bookings_sync.sandbox import Sandbox
from bookings_sync.sandbox.world import Refusal
from bookings_sync.store import SnapshotStore

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Sydney",
         "Asia/Calcutta"]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Soak:
    def __init__(self, seconds: float, seed: int, workdir: Path):
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.workdir = workdir
        # Tokens live 5 minutes here (an hour at Zoho) so a soak sees natural expiry too; forced
        # expiries are spaced so the 10-tokens-per-10-minutes budget is never the failure.
        self.sb = Sandbox(crm_time_zone="Europe/Berlin", token_ttl=300).start()
        self.last_expiry = 0.0
        self.config = workdir / "soak.toml"
        self.config.write_text(self.sb.config_toml(
            workdir / "state", interval=1, sync="overlap_seconds = 2\nmax_backoff_seconds = 4",
            tables="[bookings]\ndaily_call_limit = 100000"))
        self.daemon: subprocess.Popen | None = None
        self.figures = Counter()
        self.rss: dict[int, list[int]] = {}
        self.minute = 0
        base = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        self.base = base + dt.timedelta(days=3)
        self.pairs = []
        for i in range(60):
            start = self.base + dt.timedelta(hours=i)
            # Staff of two: some moves collide with a colleague's appointment (slot conflict).
            self.pairs.append(self.sb.book(start=start, time_zone=ZONES[i % len(ZONES)],
                                           staff_id=f"staff-{i % 2}"))

    def unique_time(self) -> dt.datetime:
        """A start nobody used before: every move is distinguishable in the request log."""
        self.minute += 1
        return self.base + dt.timedelta(days=30, minutes=37 * self.minute)

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "bookings_sync", "--config", str(self.config),
             "--log-format", "json", "--log-file", str(self.workdir / "daemon.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.rss[self.daemon.pid] = []

    def step(self) -> None:
        sb, rng = self.sb, self.rng
        meeting_id, booking_id = rng.choice(self.pairs)
        roll = rng.random()
        if roll < 0.40:
            sb.crm_move(meeting_id, self.unique_time())
            self.figures["crm moves"] += 1
        elif roll < 0.50:
            try:
                sb.bookings_reschedule(booking_id, self.unique_time())
                self.figures["bookings reschedules"] += 1
            except Refusal:
                self.figures["bookings-side refusals"] += 1
        elif roll < 0.51:
            try:
                sb.bookings_cancel(booking_id)
                self.figures["bookings cancels"] += 1
            except Refusal:
                self.figures["bookings-side refusals"] += 1
        elif roll < 0.58:
            other_meeting, _ = rng.choice(self.pairs)
            sb.crm_move(meeting_id, sb.meeting(other_meeting)["Start_DateTime"])
            self.figures["slot conflicts"] += 1
        elif roll < 0.63:
            if time.monotonic() - self.last_expiry > 90:
                sb.expire_tokens()
                self.last_expiry = time.monotonic()
                self.figures["token expiries"] += 1
        elif roll < 0.85:
            path, kind = rng.choice([("/crm/", "429"), ("/bookings/", "429"), ("/crm/", "500"),
                                     ("/bookings/", "500"), ("/crm/", "drop"),
                                     ("/bookings/", "drop"), ("/oauth/", "500")])
            retry_after = rng.choice([None, 1]) if kind == "429" else None
            sb.inject(path, kind, count=rng.randint(1, 3), retry_after=retry_after)
            self.figures[f"faults {kind}"] += 1
        elif roll < 0.90:
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait()
            self.figures["SIGKILL + restart"] += 1
            self.start_daemon()

    def run(self) -> dict:
        self.start_daemon()
        # The first cycle is the baseline: it records what exists and acts on nothing, so the
        # storm starts only once it is committed.
        state = self.workdir / "state" / "state.json"
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + self.seconds
        next_sample = 0.0
        while time.monotonic() < deadline:
            self.step()
            if time.monotonic() >= next_sample:
                sample = rss_kb(self.daemon.pid)
                if sample:
                    self.rss[self.daemon.pid].append(sample)
                next_sample = time.monotonic() + 2
            time.sleep(self.rng.uniform(0.1, 0.6))
        self.daemon.send_signal(signal.SIGTERM)
        code = self.daemon.wait(timeout=120)
        self.figures["daemon exit on SIGTERM"] = code
        # Faults off; two clean cycles settle everything still pending.
        self.sb.clear_faults() if hasattr(self.sb, "clear_faults") else None
        time.sleep(1.5)
        for _ in range(2):
            subprocess.run([sys.executable, "-m", "bookings_sync", "--config", str(self.config),
                            "--run-once", "--log-format", "json"], capture_output=True)
        return self.verify()

    def verify(self) -> dict:
        sb = self.sb
        with SnapshotStore.open_readonly(self.workdir / "state") as store:
            failures = store.failures()
            pending = store.pending()
            tracked = store.meeting_count()
        agree = closed = refused = disagree = 0
        problems = []
        for meeting_id, booking_id in self.pairs:
            meeting, appt = sb.meeting(meeting_id), sb.appointment(booking_id)
            if appt["start"] == meeting["Start_DateTime"]:
                agree += 1
            elif appt["status"] in ("cancel", "cancelled", "completed", "noshow"):
                closed += 1
            elif meeting_id in failures:
                refused += 1
            else:
                disagree += 1
                problems.append(f"meeting {meeting_id} {meeting['Start_DateTime']} vs booking "
                                f"{booking_id} {appt['start']} ({appt['status']})")
        sent = Counter((e["form"].get("booking_id"), e["form"].get("start_time"))
                       for e in sb.request_log
                       if e["endpoint"] == "bookings.rescheduleappointment" and e["status"] == 200)
        repeats = {k: v for k, v in sent.items() if v > 1}
        longest = max(self.rss.values(), key=len)
        growth = (longest[-1] - longest[len(longest) // 4]) if len(longest) >= 4 else 0
        return {
            "seconds": self.seconds, **self.figures,
            "reschedules sent": sum(sent.values()),
            "pairs": len(self.pairs), "agree": agree, "closed in Bookings": closed,
            "refusal recorded": refused, "disagree": disagree, "problems": problems[:10],
            "edits applied twice": len(repeats), "pending after settle": len(pending),
            "state file loads": True, "meetings tracked": tracked,
            "daemon RSS samples": len(longest),
            "daemon RSS KB first/last": [longest[len(longest) // 4] if longest else None,
                                         longest[-1] if longest else None],
            "RSS growth KB": growth,
            "crm calls": sum(v for k, v in sb.calls.items() if k.startswith("crm.")),
            "bookings calls": sum(v for k, v in sb.calls.items() if k.startswith("bookings.")),
            "token calls": sb.calls["accounts.token"],
            "tokens minted": sum(1 for e in sb.request_log if e["endpoint"] == "accounts.token"
                                 and e["status"] == 200),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Soak the daemon under edits and faults.")
    parser.add_argument("--seconds", type=float, default=300.0, help="driver time (default 300)")
    parser.add_argument("--quick", action="store_true", help="a 15-second smoke run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    seconds = 15.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="bookings-sync-soak-") as tmp:
        soak = Soak(seconds, args.seed, Path(tmp))
        try:
            result = soak.run()
        finally:
            soak.sb.stop()
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    ok = (result["disagree"] == 0 and result["edits applied twice"] == 0
          and result["daemon exit on SIGTERM"] == 0 and result["RSS growth KB"] < 20_000)
    print("\nSOAK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
