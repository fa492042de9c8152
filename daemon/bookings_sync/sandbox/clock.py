"""The sandbox's sense of time: real by default, frozen and steerable for tests.

Everything time-dependent in the sandbox (Modified_Time, token expiry, the 10-tokens-per-10-
minutes rule, "start in the past", the Bookings per-day limit) reads this clock, so a test can
put hundreds of edits into one Modified_Time second or expire a token without sleeping.
"""

from __future__ import annotations

import datetime as dt
import threading

UTC = dt.timezone.utc


class RealClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


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
