"""Load, complete and validate the TOML configuration.

The keys of ``[zoho]``, ``[crm]`` and ``[sync]`` shown in ``config/bookings-sync.example.toml`` are a
fixed contract (scripts outside the project write them): new keys may be added, with defaults,
but none is renamed. Every problem becomes one :class:`ConfigError` whose text names the file and
the key, so the CLI can print one line and exit 2 — never a traceback.

Every numeric key has a range (:data:`RANGES`, each with its reason); ``nan`` and ``inf`` are
refused. URLs need a host; strings may not hold control characters; ``state_dir`` may not be empty.

Secrets (``client_secret``, ``refresh_token``) come from, in order of precedence: the environment
(``ZOHO_CLIENT_SECRET``, ``ZOHO_REFRESH_TOKEN``), the TOML value or its ``*_file`` companion
(never both), or ``$CREDENTIALS_DIRECTORY/<name>`` (systemd ``LoadCredential=``). Secret files
are read by :mod:`bookings_sync.secret_file` (UTF-8, one value). One that other users may read or
change (``mode & 0o077``) loads, but with a :class:`ConfigWarning` in :attr:`Config.warnings`
naming the file and the fix (``chmod 600 FILE``): the CLI logs them at start, ``check`` shows
them. The configuration file itself may start with a UTF-8 byte-order mark (Windows editors).

Zoho's docs are silent on the ranges and on secret-file encodings: they are choices made here,
each explained where it is defined.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import pytz

from bookings_sync.engine.model import STATUS_KINDS, OnBooked, OnDelete, OnRefused
from bookings_sync.secret_file import SecretFileError, read_secret, utf8_text
from bookings_sync.zoho.datacenters import DATA_CENTERS, endpoints

CONFIG_ENV = "BOOKINGS_SYNC_CONFIG"
SECRET_ENV = {"client_secret": "ZOHO_CLIENT_SECRET", "refresh_token": "ZOHO_REFRESH_TOKEN"}


class ConfigError(Exception):
    """One line: ``<file>: [section] key: what is wrong``."""


@dataclasses.dataclass(frozen=True)
class ConfigWarning:
    """A setting that works but should be fixed: where, what is wrong, and the fix (a command)."""
    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}; fix: {self.fix}"


class Range(NamedTuple):
    low: float
    high: float
    unit: str

    def __str__(self) -> str:
        return f"{self.low:g} – {self.high:g}" + (f" {self.unit}" if self.unit else "")


# The allowed range of every numeric key, inclusive. Zoho documents none of these; each bound is
# chosen here for the reason given. config/bookings-sync.example.toml ("Range:" above each key)
# and README's options table state the same ranges (tests/test_config.py compares them).
RANGES: dict[tuple[str, str], Range] = {
    # Modified_Time has one-second resolution: polling faster finds nothing sooner and spends API
    # credits. Over a day, a timer running --run-once is the better tool.
    ("sync", "interval"): Range(1, 86_400, "seconds"),
    # Zoho normally answers within a second or two; below 1 s ordinary latency would fail calls,
    # above 5 minutes one dead connection holds up a whole cycle (and each retry of it) that long.
    ("zoho", "timeout"): Range(1, 300, "seconds"),
    # Covers writes that become visible a moment late and clock skew, which are seconds; an hour
    # of overlap would re-read an hour of edits on every cycle after a busy one.
    ("sync", "overlap_seconds"): Range(0, 3_600, "seconds"),
    # Bookings' integration creates and fills a meeting within seconds; a grace of over an hour
    # would skip a staff member's real edits to a meeting booked that morning.
    ("sync", "creation_grace_seconds"): Range(0, 3_600, "seconds"),
    # At least a day, so yesterday's meetings still compare; ten years bounds the state file.
    ("sync", "prune_after_days"): Range(1, 3_650, "days"),
    # Retrying a transient failure less than once a day would look like a lost action.
    ("sync", "max_backoff_seconds"): Range(1, 86_400, "seconds"),
    # A share of the tracked upcoming appointments.
    ("sync", "max_cancel_fraction"): Range(0, 1, ""),
    # Beyond 100,000 cancels per cycle (more than any Bookings calendar holds) the guard is off
    # in all but name: write a smaller number, or use --allow-mass-cancel deliberately.
    ("sync", "max_cancel_floor"): Range(0, 100_000, "cancels"),
    # Zoho's Bookings plans allow 250 (Free), 1,000 (Basic) or 3,000 (Premium) calls per user
    # per day; a hundred thousand leaves room for any plan to come without disabling the budget.
    ("bookings", "daily_call_limit"): Range(1, 100_000, "calls a day"),
    # The mass-book guard: a misconfigured trigger must not book a whole calendar. Past 1,000
    # new bookings in one poll it is off in all but name.
    ("book", "max_per_cycle"): Range(1, 1_000, "bookings"),
}

# Characters no configuration string may hold (C0, DEL, C1): a path with a NUL byte would be a
# traceback later, and an ESC would reach the terminal in an error line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclasses.dataclass(frozen=True)
class ZohoConfig:
    data_center: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    accounts_url: str
    api_url: str
    crm_api_version: str = "v8"
    timeout: float = 30.0
    # Where ``bookings-sync auth`` writes a new refresh token (None: not set in the file).
    refresh_token_file: Path | None = None


@dataclasses.dataclass(frozen=True)
class CrmConfig:
    booking_id_field: str = "BookingId"
    # Meetings field whose value says cancelled / completed / no-show ("" = not used).
    status_field: str = ""
    # CRM value of status_field -> Bookings updateappointment action.
    status_map: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BookingsConfig:
    # The Bookings API calls your plan allows one user per day: 250 Free, 1,000 Basic,
    # 3,000 Premium. The default is the smallest plan's: never more than any plan allows.
    daily_call_limit: int = 250
    # Zoho counts the day "between 00:00 and 23:59 hours in the respective time zone" (Bookings
    # API limits page): your Bookings org's time zone.
    time_zone: str = "UTC"


@dataclasses.dataclass(frozen=True)
class BookConfig:
    """``[book]``: a meeting staff tick in CRM becomes a Bookings appointment (a fixed contract:
    extend, never rename)."""
    trigger_field: str = ""          # a checkbox on Events; "" = the feature is off
    service_field: str = "Bookings_Service"
    staff_field: str = ""            # "" = the meeting owner's email, matched to a staff email
    time_zone_field: str = ""        # "" = default_time_zone
    default_time_zone: str = "Europe/London"
    result_field: str = ""           # "" = not written
    on_booked: OnBooked = OnBooked.DELETE   # the request meeting, once Zoho's appears
    max_per_cycle: int = 20
    # The keys that name a Meetings field (config reads them as names; check proves they exist).
    FIELD_KEYS: ClassVar[tuple[str, ...]] = ("trigger_field", "service_field", "staff_field",
                                             "time_zone_field", "result_field")

    @property
    def enabled(self) -> bool:
        return bool(self.trigger_field)


@dataclasses.dataclass(frozen=True)
class SyncConfig:
    interval: float = 60.0
    state_dir: Path = Path("/var/lib/bookings-sync")
    # Re-read this many seconds before the cursor: Modified_Time has one-second resolution and a
    # write can land in the second we last read.
    overlap_seconds: int = 5
    # A meeting seen for the first time whose Modified_Time is within this of its Created_Time is
    # fresh from the Bookings integration: record it without asking Bookings.
    creation_grace_seconds: int = 10
    # Forget meetings that ended this many days ago (keeps the store bounded).
    prune_after_days: int = 30
    # Transient failures retry on later cycles, backing off up to this many seconds.
    max_backoff_seconds: int = 3600
    on_delete: OnDelete = OnDelete.CANCEL
    on_refused: OnRefused = OnRefused.KEEP
    max_cancel_fraction: float = 0.2
    # The mass-cancel guard only applies when more than this many cancels are planned.
    max_cancel_floor: int = 5


@dataclasses.dataclass(frozen=True)
class Config:
    path: Path
    zoho: ZohoConfig
    crm: CrmConfig
    sync: SyncConfig
    bookings: BookingsConfig = BookingsConfig()
    book: BookConfig = BookConfig()
    # Settings that work but should be fixed (a secret file others can read): log them at start.
    warnings: tuple[ConfigWarning, ...] = ()

    @property
    def token_cache_path(self) -> Path:
        return self.sync.state_dir / "token.json"


_KNOWN_KEYS = {
    "zoho": {"data_center", "client_id", "client_secret", "client_secret_file", "refresh_token",
             "refresh_token_file", "accounts_url", "api_url", "crm_api_version", "timeout"},
    "crm": {"booking_id_field", "status_field", "status_map"},
    "sync": {f.name for f in dataclasses.fields(SyncConfig)},
    "bookings": {f.name for f in dataclasses.fields(BookingsConfig)},
    "book": {f.name for f in dataclasses.fields(BookConfig)},
}


def config_path(cli_value: str | None) -> Path:
    value = cli_value or os.environ.get(CONFIG_ENV)
    if not value:
        raise ConfigError(f"no configuration: pass --config PATH or set {CONFIG_ENV}")
    return Path(value)


def load(path: Path, *, check_state_dir: bool = True, need_secrets: bool = True,
         need_refresh_token: bool = True) -> Config:
    """Read and validate ``path``. Raises :class:`ConfigError` with a one-line message.
    ``need_secrets=False`` is for commands that call no API (``status``, ``retry``): the
    secrets are then left empty instead of looked up. ``need_refresh_token=False`` is for
    ``auth``, which is getting one: only the refresh token is left empty."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(utf8_text(data))
    except ValueError as exc:   # not UTF-8, or TOMLDecodeError
        problem = str(exc) if isinstance(exc, UnicodeError) else f"malformed TOML: {exc}"
        raise ConfigError(f"{path}: {problem}") from None
    return _build(path, raw, check_state_dir=check_state_dir, need_secrets=need_secrets,
                  need_refresh_token=need_refresh_token)


class _Reader:
    """Typed access to one TOML table, raising errors that name file, section and key, and
    collecting warnings."""

    def __init__(self, path: Path, section: str, table: Any):
        self.path, self.section = path, section
        self.warnings: list[ConfigWarning] = []
        if not isinstance(table, dict):
            self.fail(None, f"expected a table [{section}]")
        self.table = table
        for key in table:
            if key not in _KNOWN_KEYS[section]:
                known = ", ".join(sorted(_KNOWN_KEYS[section]))
                self.fail(key, f"unknown key (known keys: {known})")

    def where(self, key: str | None) -> str:
        return f"{self.path}: [{self.section}] {key}" if key else f"{self.path}: [{self.section}]"

    def fail(self, key: str | None, message: str):
        raise ConfigError(f"{self.where(key)}: {message}")

    def string(self, key: str, default: str | None = None, *, required: bool = False,
               empty: bool = True) -> str | None:
        """The stripped string; ``required``: the key must be there; ``empty=False``: if there,
        not blank. The value is never quoted in an error (it may be a secret)."""
        if key not in self.table:
            if required:
                self.fail(key, "missing (required)")
            return default
        value = self.table[key]
        if not isinstance(value, str):
            shown = "" if key in SECRET_ENV else f" {value!r}"
            self.fail(key, f"expected a string, got {type(value).__name__}{shown}")
        if (required or not empty) and not value.strip():
            self.fail(key, "must not be empty")
        control = _CONTROL.search(value)
        if control:
            self.fail(key, f"contains a control character (U+{ord(control.group()):04X} at "
                           f"position {control.start() + 1})")
        return value.strip()

    def number(self, key: str, default: float, *, integer: bool = False) -> float:
        """A number within :data:`RANGES`; ``integer``: no fraction allowed."""
        allowed = RANGES[(self.section, key)]
        value = self.table.get(key, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = "an integer" if integer else "a number"
            self.fail(key, f"expected {expected}, got {value!r}")
        if not math.isfinite(value):
            self.fail(key, f"must be a finite number ({allowed}), got {value!r}")
        if not allowed.low <= value <= allowed.high:
            self.fail(key, f"must be {allowed}, got {value!r}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in choices:
            self.fail(key, f"must be one of {' | '.join(choices)}, got {value!r}")
        return value

    def secret(self, key: str) -> str:
        """A secret from env, the TOML value, ``<key>_file``, or $CREDENTIALS_DIRECTORY/<key>."""
        file_key = f"{key}_file"
        in_toml, in_file = key in self.table, file_key in self.table
        if in_toml and in_file:
            self.fail(key, f"set either {key} or {file_key}, not both")
        env_value = os.environ.get(SECRET_ENV[key], "").strip()
        if env_value:
            return env_value
        if in_toml:
            return self.string(key, required=True)
        if in_file:
            file = Path(self.string(file_key, required=True))
            return self._read_secret_file(self.where(file_key), key, file)
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir and (Path(cred_dir) / key).is_file():
            return self._read_secret_file(f"$CREDENTIALS_DIRECTORY/{key}", key,
                                          Path(cred_dir) / key)
        self.fail(key, f"missing: set {key}, {file_key}, env {SECRET_ENV[key]}, "
                       f"or a systemd credential named {key}")

    def _read_secret_file(self, where: str, key: str, file: Path) -> str:
        try:
            value, mode = read_secret(file, key)
        except SecretFileError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if mode & 0o077:
            self.warnings.append(ConfigWarning(
                where, f"{file} has mode {mode & 0o777:04o}: users other than its owner can "
                       f"read or change the {key}", f"chmod 600 {file}"))
        return value


def _build(path: Path, raw: dict, *, check_state_dir: bool, need_secrets: bool = True,
           need_refresh_token: bool = True) -> Config:
    for section in raw:
        if section not in _KNOWN_KEYS:
            raise ConfigError(f"{path}: [{section}]: unknown section "
                              f"(known: {', '.join(sorted(_KNOWN_KEYS))})")
    if "zoho" not in raw:
        raise ConfigError(f"{path}: [zoho]: missing (required)")
    zoho = _Reader(path, "zoho", raw["zoho"])
    crm = _Reader(path, "crm", raw.get("crm", {}))
    sync = _Reader(path, "sync", raw.get("sync", {}))
    bookings = _Reader(path, "bookings", raw.get("bookings", {}))
    book = _Reader(path, "book", raw.get("book", {}))

    data_center = zoho.string("data_center", "com")
    if data_center not in DATA_CENTERS:
        zoho.fail("data_center", f"unknown data center {data_center!r} "
                                 f"(one of {' | '.join(DATA_CENTERS)})")
    accounts_override = _url(zoho, "accounts_url")
    api_override = _url(zoho, "api_url")
    accounts_url, api_url = endpoints(data_center, accounts_override, api_override)
    version = zoho.string("crm_api_version", "v8")
    if version not in {f"v{n}" for n in range(2, 9)}:
        zoho.fail("crm_api_version", f"must be one of v2 … v8, got {version!r}")
    zoho_cfg = ZohoConfig(
        data_center=data_center,
        client_id=zoho.string("client_id", required=True),
        client_secret=zoho.secret("client_secret") if need_secrets else "",
        refresh_token=(zoho.secret("refresh_token") if need_secrets and need_refresh_token
                       else ""),
        accounts_url=accounts_url, api_url=api_url, crm_api_version=version,
        timeout=zoho.number("timeout", 30.0),
        refresh_token_file=_path(zoho, "refresh_token_file"),
    )

    crm_cfg = CrmConfig(
        booking_id_field=crm.string("booking_id_field", "BookingId", empty=False),
        status_field=crm.string("status_field", ""),
        status_map=_status_map(crm),
    )
    if crm_cfg.status_map and not crm_cfg.status_field:
        crm.fail("status_map", "needs [crm] status_field, the Meetings field it reads")

    defaults = SyncConfig()
    state_dir = Path(sync.string("state_dir", str(defaults.state_dir), empty=False)).expanduser()
    if not state_dir.is_absolute():
        state_dir = (path.parent / state_dir).resolve()
    sync_cfg = SyncConfig(
        interval=sync.number("interval", defaults.interval),
        state_dir=state_dir,
        overlap_seconds=sync.number("overlap_seconds", defaults.overlap_seconds, integer=True),
        creation_grace_seconds=sync.number("creation_grace_seconds",
                                           defaults.creation_grace_seconds, integer=True),
        prune_after_days=sync.number("prune_after_days", defaults.prune_after_days, integer=True),
        max_backoff_seconds=sync.number("max_backoff_seconds", defaults.max_backoff_seconds,
                                        integer=True),
        on_delete=OnDelete(sync.choice("on_delete", defaults.on_delete, tuple(OnDelete))),
        on_refused=OnRefused(sync.choice("on_refused", defaults.on_refused, tuple(OnRefused))),
        max_cancel_fraction=sync.number("max_cancel_fraction", defaults.max_cancel_fraction),
        max_cancel_floor=sync.number("max_cancel_floor", defaults.max_cancel_floor, integer=True),
    )
    bookings_defaults = BookingsConfig()
    bookings_cfg = BookingsConfig(
        daily_call_limit=bookings.number("daily_call_limit", bookings_defaults.daily_call_limit,
                                         integer=True),
        time_zone=_time_zone(bookings, "time_zone", bookings_defaults.time_zone))
    book_cfg = _book(book)
    if check_state_dir:
        _check_state_dir(sync, state_dir)
    return Config(path=path, zoho=zoho_cfg, crm=crm_cfg, sync=sync_cfg, bookings=bookings_cfg,
                  book=book_cfg, warnings=tuple(zoho.warnings))


def _book(reader: _Reader) -> BookConfig:
    defaults = BookConfig()
    fields = {key: reader.string(key, getattr(defaults, key)) for key in BookConfig.FIELD_KEYS}
    book = BookConfig(
        **fields,
        default_time_zone=_time_zone(reader, "default_time_zone", defaults.default_time_zone),
        on_booked=OnBooked(reader.choice("on_booked", defaults.on_booked, tuple(OnBooked))),
        max_per_cycle=reader.number("max_per_cycle", defaults.max_per_cycle, integer=True))
    if book.enabled and not book.service_field:
        reader.fail("service_field", "needs a Meetings field holding the Bookings service")
    if book.enabled and "default_time_zone" not in reader.table:
        reader.fail("default_time_zone", "required when trigger_field is set (the customer's "
                                         "zone when the meeting names none)")
    return book


def _path(reader: _Reader, key: str) -> Path | None:
    """A file key's path exactly as :meth:`_Reader.secret` reads that file (as written)."""
    value = reader.string(key)
    return Path(value) if value else None


def _time_zone(reader: _Reader, key: str, default: str) -> str:
    """An IANA time zone name (pytz knows it), e.g. Europe/London."""
    name = reader.string(key, default, empty=False)
    try:
        pytz.timezone(name)
    except pytz.UnknownTimeZoneError:
        reader.fail(key, f"unknown time zone {name!r} (an IANA name such as Europe/London)")
    return name


def _url(reader: _Reader, key: str) -> str | None:
    """A base URL: http(s), a host, an optional valid port and path — nothing else."""
    value = reader.string(key)
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        reader.fail(key, f"must start with http:// or https://, got {value!r}")
    parts = urlsplit(value)
    if "@" in parts.netloc:
        # A user:password here would be printed in every error that names the URL.
        reader.fail(key, "must not hold user:password@ (put credentials in secrets, proxies "
                         "in $HTTPS_PROXY)")
    try:
        port = parts.port
    except ValueError:        # not a number, or over 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        reader.fail(key, f"has an invalid port (1 – 65535), got {value!r}")
    if not parts.hostname:
        reader.fail(key, f"has no host, got {value!r} (e.g. https://accounts.zoho.eu)")
    if any(char.isspace() for char in value):
        reader.fail(key, f"must not contain spaces, got {value!r}")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        reader.fail(key, f"must be a base URL without ?query or #fragment, got {value!r}")
    return value.rstrip("/")


def changed_keys(old: Config, new: Config) -> list[str]:
    """``[section] key`` of each setting that differs between two loads — names only, never
    values: two of them are secrets."""
    changed = []
    for section in dataclasses.fields(old):       # every table: none can be forgotten
        before, after = getattr(old, section.name), getattr(new, section.name)
        if not dataclasses.is_dataclass(before):
            continue                              # the path, the warnings
        changed += [f"[{section.name}] {field.name}" for field in dataclasses.fields(before)
                    if getattr(before, field.name) != getattr(after, field.name)]
    return changed


def _status_map(reader: _Reader) -> dict[str, str]:
    table = reader.table.get("status_map", {})
    if not isinstance(table, dict):
        reader.fail("status_map", "expected a table [crm.status_map]")
    for crm_value, action in table.items():
        if action not in STATUS_KINDS:
            reader.fail(f"status_map.{crm_value!r}",
                        f"Bookings has no action {action!r} (one of "
                        f"{' | '.join(STATUS_KINDS)})")
    return dict(table)


def _check_state_dir(reader: _Reader, state_dir: Path) -> None:
    """The state dir must exist (we create it, 0700: it holds the token cache) and take a file:
    probe with a real temp file, because ``os.access`` says yes to root on a read-only mount."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".probe-"):
            pass
    except OSError as exc:
        reader.fail("state_dir", f"{state_dir} is not writable: {exc.strerror or exc}")
