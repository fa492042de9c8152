"""Configuration: the fixed contract, secrets from four places, one clear line per mistake."""

from __future__ import annotations

import os
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
    (lambda t: t + "interval = 0\n", r"\[sync\] interval: must be greater than 0"),
    (lambda t: t + "interval = -5\n", r"\[sync\] interval: must be greater than 0"),
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
