"""``make demo``: the main job end to end on the embedded sandbox — no Zoho account needed.

Starts the sandbox with seeded booking-linked meetings, runs the real daemon (the console script,
in a subprocess) against it, moves one meeting "in CRM" as a user would, waits for the booking to
follow, shows it, stops the daemon with SIGTERM and exits 0 — or 1 with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bookings_sync.sandbox import Sandbox, wait_for
from bookings_sync.zoho.timefmt import format_bookings_time

INTERVAL = 2


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def main() -> int:
    with Sandbox(crm_time_zone="Europe/Berlin") as sandbox, \
            tempfile.TemporaryDirectory(prefix="bookings-sync-demo-") as tmp:
        pairs = sandbox.seed(6)
        say(f"sandbox at {sandbox.url} with {len(pairs)} booked meetings; "
            f"the CRM user works in Europe/Berlin")
        config = Path(tmp) / "demo.toml"
        config.write_text(sandbox.config_toml(Path(tmp) / "state", interval=INTERVAL))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "bookings_sync", "--config", str(config),
               "--log-format", "console"]
        say(f"starting the daemon: bookings-sync --config {config.name} (interval {INTERVAL} s)")
        daemon = subprocess.Popen(cmd, env=env)
        try:
            if not wait_for(lambda: sandbox.calls["crm.list"] >= 1, 30):
                print("the daemon never polled CRM", file=sys.stderr)
                return 1
            time.sleep(INTERVAL + 0.5)          # let the baseline cycle commit

            meeting_id, booking_id = pairs[0]
            appointment = sandbox.appointment(booking_id)
            zone = appointment["time_zone"]
            old = appointment["start"]
            new = old + dt.timedelta(days=1, hours=2)
            say(f"a CRM user drags meeting {meeting_id} from {old:%a %d %b %H:%M} UTC to "
                f"{new:%a %d %b %H:%M} UTC")
            print(f"    booking {booking_id} was booked in {zone}: "
                  f"{format_bookings_time(old, zone)} (customer's zone)", flush=True)
            sandbox.crm_move(meeting_id, new)

            followed = wait_for(lambda: sandbox.appointment(booking_id)["start"] == new,
                                INTERVAL * 5 + 10)
            after = sandbox.appointment(booking_id)
            time.sleep(INTERVAL * 2 + 0.5)      # two more cycles: the loop guard at work
            reschedules = sandbox.calls["bookings.rescheduleappointment"]
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=30)

        if not followed:
            print(f"booking {booking_id} did not follow the meeting", file=sys.stderr)
            return 1
        say(f"booking {booking_id} now starts {format_bookings_time(after['start'], zone)} "
            f"{zone} — the same instant as the CRM meeting")
        print(f"    Bookings calls: {sandbox.calls['bookings.getappointment']} getappointment, "
              f"{reschedules} rescheduleappointment (the write-back into CRM caused no loop); "
              f"CRM list calls: {sandbox.calls['crm.list']}; daemon exit code {code}", flush=True)
        return 0 if code == 0 and reschedules == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
