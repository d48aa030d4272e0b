"""Every setting, read from the environment (12-factor), with defaults that run with nothing set.

With nothing configured Kö uses SQLite in the instance folder, local audio files and the built-in
Twilio emulator. In production (`KOE_ENV=production`) a missing secret stops start-up with a message
that names it, rather than running on a silent default.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TWILIO_API_BASE_DEFAULT = "https://api.twilio.com"
EMULATOR_ACCOUNT_SID = "AC" + hashlib.sha1(b"koe-emulator-account").hexdigest()[:32]
EMULATOR_AUTH_TOKEN = "emulator-auth-token-" + hashlib.sha1(b"koe-emulator-token").hexdigest()[:12]
DEV_SECRET_KEY = "dev-only-secret-key-change-me"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise ConfigError(f"{name} must be 'true' or 'false', not {raw!r}")


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


def env_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME`, or the contents of the file named by `NAME_FILE` (Docker/Kubernetes secrets)."""
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE points to {path!r}, which cannot be read: {exc}") from exc
    return None


def normalise_database_url(url: str) -> str:
    """Accept Heroku's `postgres://` and plain `postgresql://`, and use psycopg 3 for both."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def load_config(env: Mapping[str, str], instance_path: str) -> dict[str, Any]:
    """Build Flask's config mapping from an environment mapping."""
    production = env.get("KOE_ENV", "development") == "production"
    missing: list[str] = []

    def required_in_production(name: str, default: str | None) -> str | None:
        value = env_secret(env, name)
        if value:
            return value
        if production:
            missing.append(name)
        return default

    secret_key = required_in_production("SECRET_KEY", DEV_SECRET_KEY)
    database_url = env.get("DATABASE_URL") or (
        None if production else f"sqlite:///{Path(instance_path) / 'koe.sqlite3'}"
    )
    if production and not database_url:
        missing.append("DATABASE_URL")

    account_sid = env.get("TWILIO_ACCOUNT_SID") or None
    emulator = account_sid is None
    if emulator and production:
        missing.append("TWILIO_ACCOUNT_SID")
    auth_token = env_secret(env, "TWILIO_AUTH_TOKEN")
    if not emulator and not auth_token:
        missing.append("TWILIO_AUTH_TOKEN")
    public_base_url = (env.get("PUBLIC_BASE_URL") or "").rstrip("/")
    if production and not public_base_url:
        missing.append("PUBLIC_BASE_URL")
    if missing:
        raise ConfigError(
            "Kö cannot start in production without: "
            + ", ".join(sorted(set(missing)))
            + ". Set them in the environment (see the README's table of settings)."
        )
    public_base_url = public_base_url or "http://127.0.0.1:5000"

    timezone = env.get("DEFAULT_TIMEZONE", "Europe/Stockholm")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"DEFAULT_TIMEZONE {timezone!r} is not an IANA time zone") from None
    locale = env.get("DEFAULT_LOCALE", "sv")
    if locale not in ("sv", "en"):
        raise ConfigError(f"DEFAULT_LOCALE must be 'sv' or 'en', not {locale!r}")

    api_base = env.get("TWILIO_API_BASE") or (
        f"{public_base_url}/emulator" if emulator else TWILIO_API_BASE_DEFAULT
    )
    return {
        "KOE_ENV": "production" if production else "development",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": normalise_database_url(database_url or ""),
        "PUBLIC_BASE_URL": public_base_url,
        "TWILIO_EMULATOR": emulator,
        "TWILIO_ACCOUNT_SID": account_sid or EMULATOR_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": auth_token or EMULATOR_AUTH_TOKEN,
        "TWILIO_API_KEY": env.get("TWILIO_API_KEY") or None,
        "TWILIO_API_SECRET": env_secret(env, "TWILIO_API_SECRET"),
        "TWILIO_TWIML_APP_SID": env.get("TWILIO_TWIML_APP_SID") or None,
        "TWILIO_API_BASE": api_base.rstrip("/"),
        "S3_BUCKET": env.get("S3_BUCKET") or None,
        "S3_PREFIX": env.get("S3_PREFIX", "prompts/"),
        "S3_REGION": env.get("S3_REGION") or env.get("AWS_REGION") or "eu-north-1",
        "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL") or None,
        "AUDIO_DIR": env.get("AUDIO_DIR") or str(Path(instance_path) / "audio"),
        "DEFAULT_TIMEZONE": timezone,
        "DEFAULT_LOCALE": locale,
        "BABEL_DEFAULT_LOCALE": locale,
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "SMTP_HOST": env.get("SMTP_HOST") or None,
        "SMTP_PORT": env_int(env, "SMTP_PORT", 587),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env_secret(env, "SMTP_PASSWORD"),
        "SMTP_STARTTLS": env_bool(env, "SMTP_STARTTLS", True),
        "MAIL_FROM": env.get("MAIL_FROM", "koe@localhost"),
        "RUN_WORKER_IN_PROCESS": env_bool(env, "RUN_WORKER_IN_PROCESS", not production),
        "WAIT_WRITE_BEHIND": env_bool(env, "WAIT_WRITE_BEHIND", True),
        "TRUST_PROXY": env_bool(env, "TRUST_PROXY", False),
        "SESSION_COOKIE_SECURE": env_bool(env, "SESSION_COOKIE_SECURE", production),
        "REMEMBER_COOKIE_SECURE": env_bool(env, "SESSION_COOKIE_SECURE", production),
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_DURATION": timedelta(days=env_int(env, "REMEMBER_DAYS", 30)),
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
    }


def config_from_environment(instance_path: str) -> dict[str, Any]:
    return load_config(os.environ, instance_path)
