"""Retry requests: how ``bookings-sync retry`` asks a running daemon to re-queue failures.

While a daemon runs it holds the state directory's lock and is its only writer, so ``retry``
cannot change the state itself: it leaves a request file (``retry-request-*.json``) in the state
directory, and the daemon takes the requests at the start of its next cycle.

Request files sit in the state directory itself, not in a folder of their own: under systemd the
daemon is a ``DynamicUser`` that owns the state directory, while ``retry`` runs as root — a folder
root created would be one the daemon cannot delete a request from. A request the daemon cannot
delete is not applied (it would be applied again every cycle) but logged as an error; a damaged
one is dropped with an error line ("retry everything" is not a safe reading of it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import structlog

from bookings_sync.store import atomic_write_json

log = structlog.get_logger("bookings_sync.mailbox")

RETRY_REQUEST_GLOB = "retry-request-*.json"


def post_retry_request(state_dir: Path, meeting_ids: list[str] | None) -> Path:
    """Leave a request for the daemon: these meetings (``None`` = every failure and hold)."""
    name = RETRY_REQUEST_GLOB.replace(
        "*", f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}")
    path = state_dir / name
    atomic_write_json(path, {"meeting_ids": meeting_ids or None})
    return path


def waiting_requests(state_dir: Path) -> int:
    return len(list(state_dir.glob(RETRY_REQUEST_GLOB)))


def take_retry_requests(state_dir: Path) -> list[list[str] | None]:
    """The requests waiting, oldest first, each deleted as it is taken: a list of meeting ids,
    or ``None`` for "all"."""
    taken: list[list[str] | None] = []
    for request in sorted(state_dir.glob(RETRY_REQUEST_GLOB)):
        try:
            ids = json.loads(request.read_text())["meeting_ids"]
            if ids is not None and not (isinstance(ids, list)
                                        and all(isinstance(i, str) for i in ids)):
                raise ValueError("meeting_ids is neither a list of ids nor null")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("retry.request_not_applied", file=str(request), error=str(exc),
                      hint="run `bookings-sync retry` again")
            ids = False
        try:
            # Delete first: a request that stayed would be applied again at every cycle.
            request.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("retry.request_not_applied", file=str(request), error=str(exc),
                      hint="delete the file and run `bookings-sync retry` again")
            continue
        if ids is not False:
            taken.append(ids)
    return taken
