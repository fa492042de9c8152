"""Load, complete and validate the TOML configuration.

The keys of ``[zoho]``, ``[crm]`` and ``[sync]`` shown in ``config/bookings-sync.example.toml`` are a
fixed contract (scripts outside the project write them): new keys may be added, with defaults,
but none is renamed. Every problem becomes one :class:`ConfigError` whose text names the file and
the key, so the CLI can print one line and exit 2 — never a traceback.

Secrets (``client_secret``, ``refresh_token``) come from, in order of precedence: the environment
(``ZOHO_CLIENT_SECRET``, ``ZOHO_REFRESH_TOKEN``), the TOML value or its ``*_file`` companion
(never both), or ``$CREDENTIALS_DIRECTORY/<name>`` (systemd ``LoadCredential=``).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from bookings_sync.engine.model import STATUS_KINDS, OnDelete, OnRefused
from bookings_sync.zoho.datacenters import DATA_CENTERS, endpoints

CONFIG_ENV = "BOOKINGS_SYNC_CONFIG"
SECRET_ENV = {"client_secret": "ZOHO_CLIENT_SECRET", "refresh_token": "ZOHO_REFRESH_TOKEN"}


class ConfigError(Exception):
    """One line: ``<file>: [section] key: what is wrong``."""


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


@dataclasses.dataclass(frozen=True)
class CrmConfig:
    booking_id_field: str = "BookingId"
    # Meetings field whose value says cancelled / completed / no-show ("" = not used).
    status_field: str = ""
    # CRM value of status_field -> Bookings updateappointment action.
    status_map: dict[str, str] = dataclasses.field(default_factory=dict)


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

    @property
    def token_cache_path(self) -> Path:
        return self.sync.state_dir / "token.json"


_KNOWN_KEYS = {
    "zoho": {"data_center", "client_id", "client_secret", "client_secret_file", "refresh_token",
             "refresh_token_file", "accounts_url", "api_url", "crm_api_version", "timeout"},
    "crm": {"booking_id_field", "status_field", "status_map"},
    "sync": {f.name for f in dataclasses.fields(SyncConfig)},
}


def config_path(cli_value: str | None) -> Path:
    value = cli_value or os.environ.get(CONFIG_ENV)
    if not value:
        raise ConfigError(f"no configuration: pass --config PATH or set {CONFIG_ENV}")
    return Path(value)


def load(path: Path, *, check_state_dir: bool = True, need_secrets: bool = True) -> Config:
    """Read and validate ``path``. Raises :class:`ConfigError` with a one-line message.
    ``need_secrets=False`` is for commands that call no API (``status``, ``retry``): the
    secrets are then left empty instead of looked up."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return _build(path, raw, check_state_dir=check_state_dir, need_secrets=need_secrets)


class _Reader:
    """Typed access to one TOML table, raising errors that name file, section and key."""

    def __init__(self, path: Path, section: str, table: Any):
        self.path, self.section = path, section
        if not isinstance(table, dict):
            self.fail(None, f"expected a table [{section}]")
        self.table = table
        for key in table:
            if key not in _KNOWN_KEYS[section]:
                known = ", ".join(sorted(_KNOWN_KEYS[section]))
                self.fail(key, f"unknown key (known keys: {known})")

    def fail(self, key: str | None, message: str):
        where = f"[{self.section}] {key}" if key else f"[{self.section}]"
        raise ConfigError(f"{self.path}: {where}: {message}")

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if key not in self.table:
            if required:
                self.fail(key, "missing (required)")
            return default
        value = self.table[key]
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {type(value).__name__} {value!r}")
        if required and not value.strip():
            self.fail(key, "must not be empty")
        return value.strip()

    def number(self, key: str, default: float, *, integer: bool = False, minimum: float | None = None,
               strictly_positive: bool = False, maximum: float | None = None) -> float:
        value = self.table.get(key, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = "an integer" if integer else "a number"
            self.fail(key, f"expected {expected}, got {value!r}")
        if strictly_positive and value <= 0:
            self.fail(key, f"must be greater than 0, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            self.fail(key, f"must be at most {maximum}, got {value!r}")
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
            return self._read_secret_file(file_key, Path(self.string(file_key, required=True)))
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir and (Path(cred_dir) / key).is_file():
            return self._read_secret_file(key, Path(cred_dir) / key)
        self.fail(key, f"missing: set {key}, {file_key}, env {SECRET_ENV[key]}, "
                       f"or a systemd credential named {key}")

    def _read_secret_file(self, key: str, file: Path) -> str:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.fail(key, f"cannot read {file}: {exc.strerror}")
        if not value:
            self.fail(key, f"{file} is empty")
        return value


def _build(path: Path, raw: dict, *, check_state_dir: bool, need_secrets: bool = True) -> Config:
    for section in raw:
        if section not in _KNOWN_KEYS:
            raise ConfigError(f"{path}: [{section}]: unknown section "
                              f"(known: {', '.join(sorted(_KNOWN_KEYS))})")
    if "zoho" not in raw:
        raise ConfigError(f"{path}: [zoho]: missing (required)")
    zoho = _Reader(path, "zoho", raw["zoho"])
    crm = _Reader(path, "crm", raw.get("crm", {}))
    sync = _Reader(path, "sync", raw.get("sync", {}))

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
        refresh_token=zoho.secret("refresh_token") if need_secrets else "",
        accounts_url=accounts_url, api_url=api_url, crm_api_version=version,
        timeout=zoho.number("timeout", 30.0, strictly_positive=True),
    )

    crm_cfg = CrmConfig(
        booking_id_field=crm.string("booking_id_field", "BookingId", required=False) or "",
        status_field=crm.string("status_field", "") or "",
        status_map=_status_map(crm),
    )
    if not crm_cfg.booking_id_field:
        crm.fail("booking_id_field", "must not be empty")
    if crm_cfg.status_map and not crm_cfg.status_field:
        crm.fail("status_map", "needs [crm] status_field, the Meetings field it reads")

    defaults = SyncConfig()
    state_dir = Path(sync.string("state_dir", str(defaults.state_dir))).expanduser()
    if not state_dir.is_absolute():
        state_dir = (path.parent / state_dir).resolve()
    sync_cfg = SyncConfig(
        interval=sync.number("interval", defaults.interval, strictly_positive=True),
        state_dir=state_dir,
        overlap_seconds=sync.number("overlap_seconds", defaults.overlap_seconds, integer=True,
                                    minimum=0),
        creation_grace_seconds=sync.number("creation_grace_seconds",
                                           defaults.creation_grace_seconds, integer=True, minimum=0),
        prune_after_days=sync.number("prune_after_days", defaults.prune_after_days, integer=True,
                                     strictly_positive=True),
        max_backoff_seconds=sync.number("max_backoff_seconds", defaults.max_backoff_seconds,
                                        integer=True, strictly_positive=True),
        on_delete=OnDelete(sync.choice("on_delete", defaults.on_delete, tuple(OnDelete))),
        on_refused=OnRefused(sync.choice("on_refused", defaults.on_refused, tuple(OnRefused))),
        max_cancel_fraction=sync.number("max_cancel_fraction", defaults.max_cancel_fraction,
                                        minimum=0.0, maximum=1.0),
        max_cancel_floor=sync.number("max_cancel_floor", defaults.max_cancel_floor, integer=True,
                                     minimum=0),
    )
    if check_state_dir:
        _check_state_dir(sync, state_dir)
    return Config(path=path, zoho=zoho_cfg, crm=crm_cfg, sync=sync_cfg)


def _url(reader: _Reader, key: str) -> str | None:
    value = reader.string(key)
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        reader.fail(key, f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


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
    """The state dir must exist (we create it) and take a file: probe with a real temp file,
    because ``os.access`` says yes to root on a read-only mount."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".probe-"):
            pass
    except OSError as exc:
        reader.fail("state_dir", f"{state_dir} is not writable: {exc.strerror or exc}")
