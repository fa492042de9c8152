"""Logging set-up: one event per line, chosen once at start-up, secrets redacted.

structlog and the standard library (APScheduler, urllib3) share one handler through
``structlog.stdlib.ProcessorFormatter``, so every line has the same shape. Formats:
``console`` (a TTY's default), ``logfmt`` (default otherwise) and ``json``. When stderr is
journald's stream (``JOURNAL_STREAM`` names its device and inode, systemd.exec(5)) each line
starts with the syslog priority (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) so
``journalctl -p warning`` works. ``--log-file`` uses a ``WatchedFileHandler``: the file is
reopened when logrotate moves it.

Redaction is the last processor before rendering, as structlog recommends: values under
secret-looking keys are masked, and every registered secret string (client secret, refresh token,
each access token as it is minted) is replaced wherever it appears in a value.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading

import structlog

FORMATS = ("console", "logfmt", "json")
MASK = "***"
_SECRET_KEYS = {"access_token", "refresh_token", "client_secret", "authorization", "token",
                "password"}
# journald priorities (sd-daemon(3)): prefix "<N>" on a line of stdout/stderr.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


class Redactor:
    """A structlog processor that masks registered secrets anywhere in an event."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        # Short strings would mask innocent text; real Zoho secrets are long.
        if secret and len(secret) >= 8:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _clean(self, value):
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: MASK if str(k).lower() in _SECRET_KEYS else self._clean(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger, method_name, event_dict):
        if "exc_info" in event_dict and event_dict["exc_info"]:
            # Render the traceback now so that it passes through the scrubber too.
            event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
        return {k: MASK if k.lower() in _SECRET_KEYS else self._clean(v)
                for k, v in event_dict.items()}


redactor = Redactor()


class _Formatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, *args, journald: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # One event per line, whatever a message contained.
        line = line.replace("\r", "\\r").replace("\n", "\\n")
        if self.journald:
            prio = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
            line = f"<{prio}>{line}"
        return line


def is_journal_stream(stream) -> bool:
    """Is ``stream`` the journald stream systemd gave this service? ``JOURNAL_STREAM`` is
    inherited by everything a service starts — terminals run as user services hand it to every
    shell — so only a matching device:inode counts, as systemd.exec(5) asks."""
    try:
        device, inode = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):   # unset, malformed, or not a real file
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def default_format(stream=None) -> str:
    stream = stream or sys.stderr
    return "console" if hasattr(stream, "isatty") and stream.isatty() else "logfmt"


def setup(fmt: str | None = None, *, level: str = "info", log_file: str | None = None,
          stream=None) -> None:
    """Configure structlog + logging once. Safe to call again (tests, sandbox)."""
    stream = stream or sys.stderr
    fmt = fmt or default_format(stream)
    journald = not log_file and is_journal_stream(stream)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redactor,
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True, bool_as_flag=False)
    else:
        colors = hasattr(stream, "isatty") and stream.isatty() and not log_file
        renderer = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
    formatter = _Formatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        journald=journald,
    )
    if log_file:
        handler: logging.Handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # APScheduler and urllib3 narrate every job run and retry at INFO; ours say what matters.
    for noisy in ("apscheduler", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        # filter_by_level first: a debug event below the threshold costs one comparison, not a
        # trip through every processor (the HTTP layer logs one per request).
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
