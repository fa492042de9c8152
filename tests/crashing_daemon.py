"""A daemon whose every cycle crashes — a stand-in for a bug we do not know yet. It is the real
``run_daemon`` (scheduler, signals, sd_notify, logs); only ``Cycle.run`` raises.

    python tests/crashing_daemon.py CONFIG LOG_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

from bookings_sync import config, logs
from bookings_sync.runtime import Runtime
from bookings_sync.service import run_daemon


def crash(**_):
    raise RuntimeError("a bug nobody has found yet")


if __name__ == "__main__":
    logs.setup("json", log_file=sys.argv[2])
    with Runtime(config.load(Path(sys.argv[1]))) as runtime:
        runtime.cycle.run = crash
        sys.exit(run_daemon(runtime))
