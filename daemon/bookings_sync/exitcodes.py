"""Exit codes — a contract: scripts, systemd units and timers act on them. Extend, never renumber.

``RestartPreventExitStatus=2`` in the service unit and ``SuccessExitStatus=4`` in the timer's
unit rely on these numbers; ``--help`` prints :data:`MEANINGS`.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ACTION_FAILED = 1
    CONFIG = 2
    ZOHO = 3
    LOCKED = 4
    STATE = 5
    CRASHED = 6
    INTERRUPTED = 130   # Ctrl-C (128 + SIGINT), as shells report it


MEANINGS = {
    ExitCode.OK: "done; every action succeeded or there was nothing to do",
    ExitCode.ACTION_FAILED: "done; some action failed (Bookings refused, mass-cancel held, "
                            "unreadable record)",
    ExitCode.CONFIG: "configuration error (one line on stderr names the file and key)",
    ExitCode.ZOHO: "Zoho unreachable or authentication failed",
    ExitCode.LOCKED: "another bookings-sync process holds the state directory",
    ExitCode.STATE: "the state directory became unusable mid-run (vanished, replaced, "
                    "unwritable, disk full); the state on disk is the last one committed",
    ExitCode.CRASHED: "cycles crashed (a bug: the log has the traceback); nothing half-done "
                      "was committed",
}
