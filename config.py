"""The bot's one settings object, read from the environment first and ``.env`` second.

An exported variable always wins over ``.env`` (pydantic-settings' documented order), so an operator can
override one value for one run without editing the file. A missing or malformed value is reported as one
line naming the variable and how to fix it (see :func:`describe_errors`), never with its value: two of
the values are secrets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.database import DEFAULT_DATABASE_URL

#: The provider's production API (documented in .env.example).
DEFAULT_ULAZAI_BASE_URL = "https://ulazai.com"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: How each variable is fixed, for the one-line start-up message.
_HOW_TO_FIX: dict[str, str] = {
    "DISCORD_TOKEN": "set it to your bot's token (Discord Developer Portal > your application > Bot > Reset Token)",
    "ULAZAI_API_KEY": "set it to your UlazAI API key (your UlazAI dashboard > API keys)",
    "ULAZAI_BASE_URL": "set it to an http(s) URL such as https://ulazai.com, or remove it to use the default",
    "DATABASE_URL": (
        "use sqlite+aiosqlite:///data/kling-bot.db or postgresql+asyncpg://user:password@host/dbname, "
        "or remove it to use the default"
    ),
    "DEV_GUILD_ID": "set it to a server id (a number; right-click the server with Developer Mode on) or remove it",
    "LOG_LEVEL": "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "HEARTBEAT_FILE": "set it to a writable file path, or remove it to use the default",
    "MAX_CONCURRENT_GENERATIONS": "use a whole number from 1 to 100000 (default 10)",
    "PROVIDER_MAX_RPS": "use a number of calls per second above 0 (default 5)",
    "MAX_VIDEO_BYTES": "use a number of bytes, at least 1024 (default 536870912, 512 MB)",
    "PROCESSING_TIMEOUT_MINUTES": "use a number of minutes above 0 (default 30)",
    "WORKER_LEASE_SECONDS": "use a number of seconds from 1 to 3600 (default 30)",
    "STARTUP_RETRY_MINUTES": "use a number of minutes from 0 to 1440 (default 10; 0 gives up at the first failure)",
    "MEDIA_WORKERS": "use a whole number from 1 to 64 (default 1)",
    "MEDIA_TIMEOUT_SECONDS": "use a number of seconds above 0 (default 300)",
    "METRICS_PORT": "use a port number from 1 to 65535, or leave it empty to serve no metrics",
    "METRICS_HOST": "use an address to listen on, such as 127.0.0.1 (the default) or 0.0.0.0",
    "PROVIDER_PAUSE_PROBE_SECONDS": "use a number of seconds from 1 to 86400 (default 60)",
    "SHARD_COUNT": "use a whole number of shards from 1 to 10000, or remove it to run Discord's recommended count",
    "SHARD_IDS": (
        "use comma-separated shard ids from 0 to SHARD_COUNT - 1 (such as 0,1), with SHARD_COUNT set, "
        "or remove it to run every shard"
    ),
    "DISCORD_API_BASE_URL": "remove it (it is only for testing against a local fake Discord)",
    "DISCORD_GATEWAY_URL": "remove it (it is only for testing against a local fake Discord)",
}

_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$")


_SOURCES = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    env_ignore_empty=True,
    case_sensitive=False,
)


def _database_shape(value: str) -> str:
    value = value.strip()
    if value.startswith(("postgres://", "postgresql://")):
        # A common copy-paste from hosting dashboards; the async driver is what we run on.
        value = "postgresql+asyncpg://" + value.split("://", 1)[1]
    if not value.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
        raise ValueError("is not a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL")
    return value


class DatabaseSettings(BaseSettings):
    """``DATABASE_URL`` alone, read exactly as :class:`Settings` reads it: for ``alembic`` run by hand
    (``migrations/env.py``), which must migrate the bot's database and needs none of its secrets."""

    model_config = _SOURCES

    database_url: str = DEFAULT_DATABASE_URL

    @field_validator("database_url")
    @classmethod
    def _database_shape(cls, value: str) -> str:
        return _database_shape(value)


class Settings(BaseSettings):
    """Every setting of the bot; `.env.example` documents each one."""

    model_config = _SOURCES

    discord_token: SecretStr
    ulazai_api_key: SecretStr
    ulazai_base_url: str = DEFAULT_ULAZAI_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    dev_guild_id: Annotated[int, Field(gt=0)] | None = None
    log_level: LogLevel = "INFO"
    heartbeat_file: Path = Path("data/heartbeat")
    max_concurrent_generations: Annotated[int, Field(ge=1, le=100_000)] = 10
    provider_max_rps: Annotated[float, Field(gt=0, le=1000)] = 5.0
    max_video_bytes: Annotated[int, Field(ge=1024)] = 512 * 1024 * 1024
    processing_timeout_minutes: Annotated[float, Field(gt=0)] = 30.0
    worker_lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    #: How long start-up keeps retrying when Discord cannot be reached (0: give up at once).
    startup_retry_minutes: Annotated[float, Field(ge=0, le=1440)] = 10.0
    media_workers: Annotated[int, Field(ge=1, le=64)] = 1
    media_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Only for the test suite and local experiments: point discord.py at a fake Discord.
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    # -- issue 14: the operator's cockpit
    #: Serve /metrics and /healthz on this port (None: off; 0 picks a free port, for tests).
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    #: While the provider account is paused, one queued job is tried this often.
    provider_pause_probe_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60.0

    # -- issue 15: running several processes (see the README's "Running several processes")
    #: How many gateway shards the whole deployment runs (``None``: Discord's recommended count).
    shard_count: Annotated[int, Field(ge=1, le=10_000)] | None = None
    #: The shards this process runs, out of ``shard_count`` (``None``: all of them).
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts or not all(part.isdigit() for part in parts):
            raise ValueError("is not a comma-separated list of shard ids")
        return tuple(int(part) for part in parts)

    @model_validator(mode="after")
    def _shards_exist(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT")
        if not self.shard_ids or any(not 0 <= shard < self.shard_count for shard in self.shard_ids):
            raise ValueError(f"SHARD_IDS must be ids from 0 to {self.shard_count - 1} (SHARD_COUNT - 1)")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("SHARD_IDS names a shard twice")
        return self

    @field_validator("discord_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token.lower().startswith("bot "):
            token = token[4:].strip()
        if not _TOKEN_SHAPE.match(token):
            raise ValueError("does not look like a bot token (three parts separated by dots)")
        return SecretStr(token)

    @field_validator("ulazai_api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if not key or any(ch.isspace() for ch in key):
            raise ValueError("must be one word with no spaces")
        return SecretStr(key)

    @field_validator("ulazai_base_url", "discord_api_base_url", "discord_gateway_url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ValueError("is not an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_shape(cls, value: str) -> str:
        return _database_shape(value)

    @field_validator("metrics_host")
    @classmethod
    def _host_shape(cls, value: str) -> str:
        host = value.strip()
        if not host or "/" in host or any(ch.isspace() for ch in host):
            raise ValueError("is not an address to listen on")
        return host

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


def describe_errors(error: ValidationError) -> str:
    """One line naming each bad variable and how to fix it, without ever quoting a value."""
    problems: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        reason = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"] and reason.startswith("SHARD_IDS"):  # the shard settings checked together
            problems.append(f"{reason}: {_HOW_TO_FIX['SHARD_IDS']}")
            continue
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        if item["type"] == "missing":
            what = f"{name} is not set"
        else:
            reason = str(item["msg"]).removeprefix("Value error, ")
            what = f"{name} {reason}" if reason.startswith(("does", "is", "must")) else f"{name} is invalid"
        fix = _HOW_TO_FIX.get(name, "see .env.example")
        problems.append(f"{what}: {fix}")
    return "Configuration error: " + "; ".join(problems) + " (in .env or the environment; see .env.example)."


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Build the settings; raises :class:`pydantic.ValidationError` for :func:`describe_errors`."""
    return Settings(_env_file=env_file)
