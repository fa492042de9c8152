"""Configuration: the fixed contract, secrets from four places, one clear line per mistake,
documented ranges for every number, and warnings for secret files other users can read."""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from pathlib import Path

import pytest

from bookings_sync import config as cfg

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "bookings-sync.toml"
    path.write_text(text)
    return path


BASE = """
[zoho]
data_center = "eu"
client_id = "1000.ABC"
client_secret = "s3cret-value"
refresh_token = "1000.refresh-value"

[sync]
state_dir = "{state}"
"""


def with_zoho_line(text: str, line: str) -> str:
    return text.replace('data_center = "eu"', f'data_center = "eu"\n{line}')


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


def test_the_documented_keys_load_with_defaults(tmp_path):
    config = cfg.load(write(tmp_path, BASE.format(state=tmp_path / "state")))
    assert config.zoho.accounts_url == "https://accounts.zoho.eu"
    assert config.zoho.api_url == "https://www.zohoapis.eu"
    assert config.crm.booking_id_field == "BookingId"
    assert config.sync.interval == 60 and config.sync.on_delete == "cancel"
    assert (tmp_path / "state").is_dir()


def test_the_example_config_is_valid(tmp_path):
    text = (REPO / "config" / "bookings-sync.example.toml").read_text()
    text = text.replace('"/var/lib/bookings-sync"', f'"{tmp_path}"')
    config = cfg.load(write(tmp_path, text))
    assert config.zoho.data_center == "com"


def test_overrides_win_over_the_data_center(tmp_path):
    text = BASE.format(state=tmp_path) + ""
    text = text.replace('data_center = "eu"', 'data_center = "eu"\naccounts_url = "http://127.0.0.1:9/"\napi_url = "http://127.0.0.1:9"')
    config = cfg.load(write(tmp_path, text))
    assert config.zoho.accounts_url == config.zoho.api_url == "http://127.0.0.1:9"


def test_secrets_from_env_file_and_systemd_credentials(tmp_path, monkeypatch):
    text = BASE.format(state=tmp_path).replace('client_secret = "s3cret-value"\n', "")
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    config = cfg.load(write(tmp_path, text.replace("[sync]", "[sync]").replace(
        'client_id = "1000.ABC"', f'client_id = "1000.ABC"\nclient_secret_file = "{secret_file}"')))
    assert config.zoho.client_secret == "from-file"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "client_secret").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert cfg.load(write(tmp_path, text)).zoho.client_secret == "from-systemd"
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "from-env")
    assert cfg.load(write(tmp_path, text)).zoho.client_secret == "from-env"


def test_secrets_never_show_in_the_config_repr(tmp_path):
    config = cfg.load(write(tmp_path, BASE.format(state=tmp_path)))
    assert "s3cret-value" not in repr(config) and "refresh-value" not in repr(config)


@pytest.mark.parametrize("mutate,needle", [
    (lambda t: t.replace('client_id = "1000.ABC"\n', ""), r"\[zoho\] client_id: missing"),
    (lambda t: t.replace('"eu"', '"mars"'), r"\[zoho\] data_center: unknown data center 'mars'"),
    (lambda t: t + "interval = 0\n", r"\[sync\] interval: must be 1 – 86400 seconds, got 0"),
    (lambda t: t + "interval = -5\n", r"\[sync\] interval: must be 1 – 86400 seconds, got -5"),
    (lambda t: t + 'state_dir = ""\n', r"malformed TOML"),    # a second state_dir line
    (lambda t: t.replace('client_id = "1000.ABC"', 'client_id = "1000.\\u001b[2J"'),
     r"\[zoho\] client_id: contains a control character \(U\+001B at position 6\)"),
    (lambda t: t + '[crm]\nbooking_id_field = " "\n',
     r"\[crm\] booking_id_field: must not be empty"),
    (lambda t: with_zoho_line(t, 'accounts_url = "https://h/x?a=1"'),
     r"\[zoho\] accounts_url: must be a base URL without \?query or #fragment"),
    (lambda t: with_zoho_line(t, 'api_url = "https://zoho example"'),
     r"\[zoho\] api_url: must not contain spaces"),
    (lambda t: with_zoho_line(t, 'api_url = "https://u:pw@h"'),
     r"\[zoho\] api_url: must not hold user:password@"),
    (lambda t: with_zoho_line(t, 'api_url = "http://h:0"'),
     r"\[zoho\] api_url: has an invalid port"),
    (lambda t: t.replace('client_secret = "s3cret-value"', "client_secret = 12345678"),
     r"\[zoho\] client_secret: expected a string, got int$"),
    (lambda t: t.replace("[zoho]", "[zoho"), r"malformed TOML"),
    (lambda t: t.replace('client_id = "1000.ABC"', 'client_id = "1000.ABC"\nclient_secret_file = "/x"'),
     r"\[zoho\] client_secret: set either client_secret or client_secret_file, not both"),
    (lambda t: t + "intervall = 30\n", r"\[sync\] intervall: unknown key"),
    (lambda t: t + 'on_delete = "maybe"\n', r"\[sync\] on_delete: must be one of cancel \| ignore"),
    (lambda t: t + '[crm]\nstatus_field = "S"\n[crm.status_map]\n"Done" = "finish"\n',
     r"Bookings has no action 'finish'"),
])
def test_each_bad_value_names_the_file_and_key(tmp_path, mutate, needle):
    path = write(tmp_path, mutate(BASE.format(state=tmp_path)))
    with pytest.raises(cfg.ConfigError, match=needle) as info:
        cfg.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the read-only probe below")
def test_unwritable_state_dir(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(cfg.ConfigError, match=r"\[sync\] state_dir: .* is not writable"):
        cfg.load(write(tmp_path, BASE.format(state=locked / "sub")))


def test_state_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(cfg.ConfigError, match=r"\[sync\] state_dir: .* is not writable"):
        cfg.load(write(tmp_path, BASE.format(state=blocker / "state")))


def bounds_cases() -> list:
    """Per numeric key: values just inside its range load, just outside, nan and ±inf do not."""
    cases = []
    defaults = {"sync": cfg.SyncConfig(), "zoho": None, "bookings": cfg.BookingsConfig(),
                "book": cfg.BookConfig()}
    for (section, key), allowed in cfg.RANGES.items():
        integer = isinstance(getattr(defaults[section], key, 0.0), int)
        step = 1 if integer else 0.001
        for value in (allowed.low, allowed.high):
            cases.append(pytest.param(section, key, repr(value), None, id=f"{key}={value}"))
        for value in (allowed.low - step, allowed.high + step):
            cases.append(pytest.param(section, key, repr(value), f"must be {allowed}, got ",
                                      id=f"{key}={value}"))
        if not integer:
            cases += [pytest.param(section, key, value, f"must be a finite number ({allowed}), "
                                   f"got ", id=f"{key}={value}")
                      for value in ("nan", "inf", "-inf", "+inf")]
    return cases


@pytest.mark.parametrize("section,key,value,problem", bounds_cases())
def test_every_number_has_a_range(tmp_path, section, key, value, problem):
    text = BASE.format(state=tmp_path)
    if f"[{section}]\n" not in text:
        text += f"\n[{section}]\n"
    text = text.replace(f"[{section}]\n", f"[{section}]\n{key} = {value}\n")
    path = write(tmp_path, text)
    if problem is None:
        config = cfg.load(path)
        assert getattr(getattr(config, section), key) == float(value)
        return
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path)
    assert str(info.value).startswith(f"{path}: [{section}] {key}: {problem}")


def test_the_documented_ranges_are_the_enforced_ones():
    """The example config ("Range:" above each key) and README's options table say what
    config.RANGES enforces."""
    example = (REPO / "config" / "bookings-sync.example.toml").read_text()
    documented = {key: text for text, key in
                  re.findall(r"# Range: ([^(\n]+?)\.?(?: \(.*)?\n(?:#.*\n)*(\w+) =", example)}
    assert documented == {key: str(allowed) for (_, key), allowed in cfg.RANGES.items()}
    readme = (REPO / "README.md").read_text()
    for (section, key), allowed in cfg.RANGES.items():
        row = next((line for line in readme.splitlines()
                    if line.startswith("|") and f"`{key}`" in line), None)
        assert row is not None, key
        assert str(allowed) in row, (row, str(allowed))


def secret_file(tmp_path, content: bytes, mode: int = 0o600) -> Path:
    secret = tmp_path / "secret"
    secret.write_bytes(content)
    secret.chmod(mode)
    return secret


def with_secret_file(tmp_path, secret: Path) -> Path:
    text = BASE.format(state=tmp_path).replace('client_secret = "s3cret-value"\n',
                                               f'client_secret_file = "{secret}"\n')
    return write(tmp_path, text)


@pytest.mark.parametrize("content", [
    b"from-file", b"from-file\n", b"  from-file \r\n", codecs.BOM_UTF8 + b"from-file\r\n"])
def test_a_secret_file_holds_one_value_bom_and_whitespace_aside(tmp_path, content):
    config = cfg.load(with_secret_file(tmp_path, secret_file(tmp_path, content)))
    assert config.zoho.client_secret == "from-file" and config.warnings == ()


@pytest.mark.parametrize("content,problem", [
    ("from-file".encode("utf-16"), "UTF-16 or UTF-32 text, expected UTF-8"),
    ("from-file".encode("utf-16-be"), "UTF-16 or UTF-32 text, expected UTF-8"),  # no BOM
    ("fröm-file".encode("cp1252"), "not UTF-8 text (invalid byte at offset 2"),
    (b"from file\n", "holds more than one word or line"),
    (b"client_secret\nfrom-file\n", "holds more than one word or line"),
    (b"from\x1bfile", "holds more than one word or line"),
    (b" \n", "is empty"),
    (b"x" * (64 * 1024 + 1), "is over 64 KiB"),
])
def test_a_bad_secret_file_is_named_never_quoted(tmp_path, content, problem):
    secret = secret_file(tmp_path, content)
    path = with_secret_file(tmp_path, secret)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: [zoho] client_secret_file: ")
    assert problem in message and str(secret) in message
    assert "from" not in message.replace(str(tmp_path), "") and "\n" not in message


def test_a_secret_file_others_can_read_is_a_warning_with_the_fix(tmp_path, monkeypatch):
    secret = secret_file(tmp_path, b"from-file\n", mode=0o640)
    config = cfg.load(with_secret_file(tmp_path, secret))
    assert config.zoho.client_secret == "from-file"
    [warning] = config.warnings
    assert warning.where == f"{tmp_path / 'bookings-sync.toml'}: [zoho] client_secret_file"
    assert warning.fix == f"chmod 600 {secret}"
    assert str(warning) == (f"{warning.where}: {secret} has mode 0640: users other than its "
                            f"owner can read or change the client_secret; fix: chmod 600 {secret}")
    # A systemd credential too (systemd makes them 0400; a shell's stand-in may not be).
    creds = tmp_path / "creds"
    creds.mkdir()
    secret_file(creds, b"from-systemd", mode=0o604).rename(creds / "refresh_token")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = BASE.format(state=tmp_path).replace('refresh_token = "1000.refresh-value"\n', "")
    config = cfg.load(write(tmp_path, text))
    assert [(w.where, w.fix) for w in config.warnings] == [
        ("$CREDENTIALS_DIRECTORY/refresh_token", f"chmod 600 {creds / 'refresh_token'}")]
    # A secret taken from the environment reads no file, so warns of none.
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", "from-env")
    assert cfg.load(write(tmp_path, text)).warnings == ()


def test_the_config_file_may_start_with_a_bom_but_not_be_utf16(tmp_path):
    path = tmp_path / "bookings-sync.toml"
    path.write_bytes(codecs.BOM_UTF8 + BASE.format(state=tmp_path).encode())
    assert cfg.load(path).zoho.client_id == "1000.ABC"
    path.write_bytes(BASE.format(state=tmp_path).encode("utf-16"))
    with pytest.raises(cfg.ConfigError, match=r": UTF-16 or UTF-32 text, expected UTF-8: save"):
        cfg.load(path)
    path.write_bytes(b"# caf\xe9\n" + BASE.format(state=tmp_path).encode())
    with pytest.raises(cfg.ConfigError, match=r": not UTF-8 text \(invalid byte at offset 5"):
        cfg.load(path)


def test_changed_keys_names_keys_never_values(tmp_path):
    old = cfg.load(write(tmp_path, BASE.format(state=tmp_path)))
    assert cfg.changed_keys(old, old) == []
    new = dataclasses.replace(
        old, zoho=dataclasses.replace(old.zoho, client_secret="rotated-secret-value"),
        sync=dataclasses.replace(old.sync, interval=5.0))
    changed = cfg.changed_keys(old, new)
    assert changed == ["[zoho] client_secret", "[sync] interval"]
    assert "rotated" not in repr(changed) and "s3cret" not in repr(changed)
    # The tables added later count too: a reload that changes only them is not "nothing".
    newer = dataclasses.replace(
        old, bookings=dataclasses.replace(old.bookings, daily_call_limit=1000),
        book=dataclasses.replace(old.book, max_per_cycle=5))
    assert cfg.changed_keys(old, newer) == ["[bookings] daily_call_limit",
                                            "[book] max_per_cycle"]
