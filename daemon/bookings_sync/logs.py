"""Logging set-up: one event per line, chosen once at start-up, secrets redacted.

structlog and the standard library (APScheduler, urllib3) share one handler through
``structlog.stdlib.ProcessorFormatter``, so every line has the same shape. Formats:
``console`` (a TTY's default), ``logfmt`` (default otherwise) and ``json``. When stderr is
journald's stream (``JOURNAL_STREAM`` names its device and inode, systemd.exec(5)) each line
starts with the syslog priority (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) so
``journalctl -p warning`` works. ``--log-file`` uses a ``WatchedFileHandler``: the file is
reopened when logrotate moves it, and at once on :func:`reopen_log_file` (the daemon's SIGHUP).
A log file that cannot be opened is a :class:`LogFileError` with one line, before any logging.

Redaction comes just before rendering, as structlog recommends: values under secret-looking keys
are masked, and every registered secret string (client secret, refresh token, each access token as
it is minted) is replaced wherever it appears in a value. After it, :func:`escape_controls`
passes every key and string value through :func:`printable`, so that text from Zoho (a refusal
message, a field value) can neither drive a terminal (ESC, BEL, CR) nor split an event into two
lines, in any format. Backslashes are left as they are: an escaped ``\\x1b`` and a literal one
look alike, which is acceptable for reading logs and keeps paths and regexes unchanged.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import threading
from pathlib import Path

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

# C0 controls, DEL and C1 controls (ESC, BEL, CR, LF, NEL …), the Unicode line and paragraph
# separators (str.splitlines and some viewers break lines there) and the bidirectional overrides
# and isolates (they reorder what a reader sees on the line).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to print on a terminal or a log line: control characters (C0, DEL, C1),
    line/paragraph separators and bidi overrides become ``\\n``, ``\\r``, ``\\t``, ``\\xNN`` or
    ``\\uNNNN``. Text without any comes back as the very same object (str subclasses too)."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(_escape, text)


# Values that render without text of their own (the formatter's ``_record`` is removed unrendered).
_NO_TEXT = (bool, int, float, type(None), logging.LogRecord)


def _escaped(value):
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_escaped_key(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_escaped(v) for v in value)
    if isinstance(value, _NO_TEXT):
        return value
    # Any other object: logfmt prints its str(), so that is what must be safe.
    text = str(value)
    return printable(text) if _UNPRINTABLE.search(text) else value


def _escaped_key(key):
    # logfmt cannot carry a space in a key (structlog raises on one): escape it too.
    return printable(key).replace(" ", "\\x20") if isinstance(key, str) else key


def escape_controls(logger, method_name, event_dict):
    """A structlog processor: :func:`printable` over every key and string value, nested ones
    included; an object whose text holds a control character becomes that text, escaped."""
    return {_escaped_key(k): _escaped(v) for k, v in event_dict.items()}


class LogFileError(Exception):
    """``--log-file`` cannot be opened for appending: one line saying why."""


class _LogFile(logging.handlers.WatchedFileHandler):
    """The ``--log-file`` handler: reopened when logrotate moves the file (at the next line),
    or at once by :meth:`reopen`."""

    def reopen(self) -> str | None:
        """Open the path again and write there from the next line. If it cannot be opened,
        keep writing to the file already open and return why, in one line."""
        with self.lock:
            try:
                stream = self._open()
            except OSError as exc:
                return f"cannot reopen log file {self.baseFilename}: {exc.strerror}; still " \
                       f"writing to the file it had open"
            old, self.stream = self.stream, stream
            self._statstream()
        if old is not None:
            old.close()
        return None


# Why a log file cannot be opened, in the words an admin needs; other errors give strerror.
_OPEN_PROBLEMS = {
    FileNotFoundError: "directory {parent} does not exist",
    IsADirectoryError: "is a directory; give the path of a file in it",
    NotADirectoryError: "a component of the path is not a directory",
    PermissionError: "permission denied (cannot append to it)",
}


def open_log_file(path: str) -> _LogFile:
    """The handler for ``--log-file path``, or :class:`LogFileError` with one line."""
    where = f"--log-file {printable(path)!r}" if path else "--log-file"
    if not path.strip():
        raise LogFileError(f"{where}: empty path")
    try:
        return _LogFile(path, encoding="utf-8")
    except OSError as exc:
        problem = next((text for kind, text in _OPEN_PROBLEMS.items() if isinstance(exc, kind)),
                       f"cannot open for appending: {exc.strerror or exc}")
        raise LogFileError(f"{where}: {problem.format(parent=Path(path).parent)}") from None


def reopen_log_file() -> str | None:
    """SIGHUP: reopen the ``--log-file`` now (None when there is none, or all went well);
    otherwise one line saying why not."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            return handler.reopen()
    return None


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
    """Configure structlog + logging once. Safe to call again (tests, sandbox). Raises
    :class:`LogFileError` before changing anything when ``log_file`` cannot be opened."""
    stream = stream or sys.stderr
    handler: logging.Handler = (open_log_file(log_file) if log_file is not None
                                else logging.StreamHandler(stream))
    fmt = fmt or default_format(stream)
    journald = log_file is None and is_journal_stream(stream)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redactor,
        escape_controls,
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True, bool_as_flag=False)
    else:
        colors = hasattr(stream, "isatty") and stream.isatty() and log_file is None
        renderer = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
    formatter = _Formatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        journald=journald,
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()        # a previous log file's descriptor; a stream handler keeps its stream
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
