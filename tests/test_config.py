"""Settings: environment first, `.env` second, and one clear line with exit 2 for anything wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import DEFAULT_ULAZAI_BASE_URL, Settings, describe_errors, load_settings

ROOT = Path(__file__).resolve().parents[1]
GOOD_TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
SETTING_NAMES = (
    "DISCORD_TOKEN",
    "ULAZAI_API_KEY",
    "ULAZAI_BASE_URL",
    "DATABASE_URL",
    "DEV_GUILD_ID",
    "LOG_LEVEL",
    "HEARTBEAT_FILE",
    "MEDIA_WORKERS",
    "MEDIA_TIMEOUT_SECONDS",
    "DISCORD_API_BASE_URL",
    "DISCORD_GATEWAY_URL",
    "SHARD_COUNT",
    "SHARD_IDS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run_bot(
    tmp_path: Path, env: dict[str, str], dotenv: str | None = None
) -> subprocess.CompletedProcess[str]:
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_discord_token_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_bot(tmp_path, {"ULAZAI_API_KEY": "key-123456"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DISCORD_TOKEN is not set" in lines[0]
    assert "Developer Portal" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_both_secrets_missing_named_on_one_line(tmp_path: Path) -> None:
    result = run_bot(tmp_path, {})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "DISCORD_TOKEN is not set" in line
    assert "ULAZAI_API_KEY is not set" in line


def test_empty_value_counts_as_missing(tmp_path: Path) -> None:
    result = run_bot(tmp_path, {}, dotenv="DISCORD_TOKEN=\nULAZAI_API_KEY=key-123456\n")
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr


def test_malformed_secret_is_named_but_never_printed(tmp_path: Path) -> None:
    secret = "not a token but very secret"
    result = run_bot(tmp_path, {"DISCORD_TOKEN": secret, "ULAZAI_API_KEY": "k3y with spaces"})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "DISCORD_TOKEN does not look like a bot token" in line
    assert "ULAZAI_API_KEY must be one word" in line
    assert secret not in result.stderr
    assert "k3y with spaces" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL is not a sqlite+aiosqlite"),
        ("ULAZAI_BASE_URL", "ftp://ulazai.example", "ULAZAI_BASE_URL is not an http(s) URL"),
        ("DEV_GUILD_ID", "my-server", "DEV_GUILD_ID is invalid"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL is invalid"),
        ("MEDIA_WORKERS", "0", "MEDIA_WORKERS is invalid: use a whole number from 1 to 64"),
        ("MEDIA_TIMEOUT_SECONDS", "-5", "MEDIA_TIMEOUT_SECONDS is invalid: use a number of seconds above 0"),
        ("METRICS_PORT", "70000", "METRICS_PORT is invalid: use a port number from 1 to 65535"),
        ("METRICS_PORT", "http", "METRICS_PORT is invalid: use a port number"),
        ("METRICS_HOST", "10.0.0.1/8", "METRICS_HOST is not an address to listen on"),
        (
            "PROVIDER_PAUSE_PROBE_SECONDS",
            "-3",
            "PROVIDER_PAUSE_PROBE_SECONDS is invalid: use a number of seconds",
        ),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str, expected: str) -> None:
    env = {"DISCORD_TOKEN": GOOD_TOKEN, "ULAZAI_API_KEY": "key-123456", name: value}
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    line = describe_errors(caught.value)
    assert expected in line
    assert "\n" not in line
    assert value not in line


def test_malformed_value_through_the_real_entry_point(tmp_path: Path) -> None:
    result = run_bot(
        tmp_path, {"DISCORD_TOKEN": GOOD_TOKEN, "ULAZAI_API_KEY": "key", "DATABASE_URL": "mysql://x"}
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: DATABASE_URL")


def test_dotenv_is_read_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={GOOD_TOKEN}\nULAZAI_API_KEY=from-dotenv\nLOG_LEVEL=debug\nDEV_GUILD_ID=42\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ULAZAI_API_KEY", "from-environment")
    settings = load_settings()
    assert settings.ulazai_api_key.get_secret_value() == "from-environment"
    assert settings.discord_token.get_secret_value() == GOOD_TOKEN
    assert settings.log_level == "DEBUG"
    assert settings.dev_guild_id == 42


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("ULAZAI_API_KEY", "key-123456")
    settings = load_settings(env_file=None)
    assert settings.ulazai_base_url == DEFAULT_ULAZAI_BASE_URL
    assert settings.database_url == "sqlite+aiosqlite:///data/kling-bot.db"
    assert settings.dev_guild_id is None
    assert settings.log_level == "INFO"
    assert settings.media_workers == 1
    assert settings.media_timeout_seconds == 300.0
    assert (settings.metrics_port, settings.metrics_host) == (None, "127.0.0.1")  # no metrics server
    assert settings.provider_pause_probe_seconds == 60.0


def test_secrets_hidden_in_repr_and_http_allowed_for_a_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", f"Bot {GOOD_TOKEN}")
    monkeypatch.setenv("ULAZAI_API_KEY", "key-123456")
    monkeypatch.setenv("ULAZAI_BASE_URL", "http://127.0.0.1:8080/")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/kling")
    settings = load_settings(env_file=None)
    assert settings.discord_token.get_secret_value() == GOOD_TOKEN  # a pasted "Bot " prefix is dropped
    assert settings.ulazai_base_url == "http://127.0.0.1:8080"
    assert settings.database_url == "postgresql+asyncpg://u:p@db/kling"
    assert GOOD_TOKEN not in repr(settings)
    assert "key-123456" not in repr(settings)


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    fields = {name.upper() for name in Settings.model_fields} - {
        "DISCORD_API_BASE_URL",
        "DISCORD_GATEWAY_URL",
    }
    assert fields <= documented


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"}, "SHARD_IDS must be ids from 0 to 1"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS names a shard twice"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "one"}, "SHARD_IDS is not a comma-separated list"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT is invalid"),
    ],
)
def test_shard_settings_are_checked_together(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in {"DISCORD_TOKEN": GOOD_TOKEN, "ULAZAI_API_KEY": "key-123456", **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings(env_file=None)
    line = describe_errors(caught.value)
    assert expected in line
    assert "\n" not in line


def test_shards_this_process_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("ULAZAI_API_KEY", "key-123456")
    assert (load_settings(env_file=None).shard_count, load_settings(env_file=None).shard_ids) == (None, None)
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", " 2, 3 ")
    settings = load_settings(env_file=None)
    assert (settings.shard_count, settings.shard_ids) == (4, (2, 3))


def test_bad_shard_ids_exit_2_with_one_line(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": GOOD_TOKEN, "ULAZAI_API_KEY": "key", "SHARD_COUNT": "2", "SHARD_IDS": "2"}
    result = run_bot(tmp_path, env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: SHARD_IDS must be ids from 0 to 1")
