"""The sandbox's sense of time: real by default, frozen and steerable for tests.

Everything time-dependent in the sandbox (Modified_Time, token expiry, the 10-tokens-per-10-
minutes rule, "start in the past", the Bookings per-day limit, the HTTP ``Date`` header) reads
this clock, so a test can put hundreds of edits into one Modified_Time second or expire a token
without sleeping. Both clocks can be set far from the real time (a Zoho whose clock is 40 days
behind): the frozen one stays there, the real one keeps ticking from there.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

UTC = dt.timezone.utc


class RealClock:
    """Real time, shifted by an offset that ``set`` and ``advance`` change (zero at first)."""

    def __init__(self):
        self._offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self._offset

    def set(self, when: dt.datetime) -> None:
        self._offset = when.astimezone(UTC) - dt.datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        self._offset += dt.timedelta(seconds=seconds)


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: dt.datetime | None = None):
        start = start or dt.datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def set(self, when: dt.datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)


def second(when: dt.datetime) -> dt.datetime:
    """CRM timestamps (and Bookings' ``booked_on``) have one-second resolution."""
    return when.astimezone(UTC).replace(microsecond=0)


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` in real time until it holds or ``timeout`` passes; its last answer.
    For programs that drive the sandbox from outside (demo, tests, soak)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
