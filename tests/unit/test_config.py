"""Configuration from the environment: defaults that run, and clear errors in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_app.config import (
    EMULATOR_AUTH_TOKEN,
    ConfigError,
    env_bool,
    load_config,
    normalise_database_url,
)

PRODUCTION = {
    "KOE_ENV": "production",
    "SECRET_KEY": "s3cret",
    "DATABASE_URL": "postgres://u:p@db.example:5432/koe",
    "PUBLIC_BASE_URL": "https://koe.example.se/",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "tok",
}


def test_it_runs_with_nothing_set_on_sqlite_and_the_emulator(tmp_path: Path) -> None:
    config = load_config({}, str(tmp_path))
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'koe.sqlite3'}"
    assert config["TWILIO_EMULATOR"] is True
    assert config["TWILIO_AUTH_TOKEN"] == EMULATOR_AUTH_TOKEN
    assert config["TWILIO_API_BASE"] == "http://127.0.0.1:5000/emulator"
    assert config["S3_BUCKET"] is None
    assert config["DEFAULT_TIMEZONE"] == "Europe/Stockholm"
    assert config["DEFAULT_LOCALE"] == "sv"


def test_it_accepts_herokus_postgres_url(tmp_path: Path) -> None:
    config = load_config(PRODUCTION, str(tmp_path))
    assert config["DATABASE_URL"] == "postgresql+psycopg://u:p@db.example:5432/koe"
    assert config["PUBLIC_BASE_URL"] == "https://koe.example.se"
    assert config["TWILIO_EMULATOR"] is False
    assert config["TWILIO_API_BASE"] == "https://api.twilio.com"
    assert config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "DATABASE_URL", "PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
)
def test_it_refuses_to_start_in_production_without_a_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_config(env, str(tmp_path))


def test_it_reads_a_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"} | {"SECRET_KEY_FILE": str(secret)}
    assert load_config(env, str(tmp_path))["SECRET_KEY"] == "from-file"


def test_it_names_an_unreadable_secret_file(tmp_path: Path) -> None:
    env = {"SECRET_KEY_FILE": str(tmp_path / "nope")}
    with pytest.raises(ConfigError, match="SECRET_KEY_FILE"):
        load_config(env, str(tmp_path))


@pytest.mark.parametrize("raw", ["yes", "1", "TRUE!", "on"])
def test_it_rejects_anything_but_true_or_false(raw: str) -> None:
    with pytest.raises(ConfigError, match="FLAG"):
        env_bool({"FLAG": raw}, "FLAG", False)


def test_it_rejects_an_unknown_time_zone_and_locale(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE"):
        load_config({"DEFAULT_TIMEZONE": "Europe/Gothenburg"}, str(tmp_path))
    with pytest.raises(ConfigError, match="DEFAULT_LOCALE"):
        load_config({"DEFAULT_LOCALE": "de"}, str(tmp_path))


def test_it_points_the_rest_client_where_told(tmp_path: Path) -> None:
    env = PRODUCTION | {"TWILIO_API_BASE": "https://example.signalwire.com/api/laml/"}
    assert load_config(env, str(tmp_path))["TWILIO_API_BASE"] == "https://example.signalwire.com/api/laml"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://a/b", "postgresql+psycopg://a/b"),
        ("postgresql://a/b", "postgresql+psycopg://a/b"),
        ("postgresql+psycopg://a/b", "postgresql+psycopg://a/b"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_it_normalises_database_urls(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected
