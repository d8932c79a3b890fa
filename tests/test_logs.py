"""The log filter keeps the bot token, the API key and interaction tokens out of every line."""

from __future__ import annotations

import logging

import pytest

from logs import REDACTED, RedactingFilter, setup_logging

TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
API_KEY = "ulz-live-0123456789abcdef"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldHN0dWZm"


def make_record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("discord.http", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_known_secrets_are_redacted_from_message_and_args() -> None:
    redactor = RedactingFilter([TOKEN, API_KEY])
    record = make_record("token=%s key=%s", TOKEN, API_KEY)
    assert redactor.filter(record)
    assert TOKEN not in record.getMessage()
    assert API_KEY not in record.getMessage()
    assert record.getMessage().count(REDACTED) == 2


@pytest.mark.parametrize(
    "line",
    [
        f"POST https://discord.example/api/v10/interactions/123456789/{INTERACTION_TOKEN}/callback",
        f"PATCH /api/v10/webhooks/987654321/{INTERACTION_TOKEN}/messages/@original",
        f"headers={{'Authorization': 'Bot {TOKEN}'}}",
        "headers={'Authorization': 'Bearer some-unknown-api-key-value'}",
        f"bare token {INTERACTION_TOKEN}",
    ],
)
def test_token_shapes_are_redacted_without_knowing_them(line: str) -> None:
    record = make_record(line)
    RedactingFilter([]).filter(record)
    message = record.getMessage()
    assert INTERACTION_TOKEN not in message
    assert TOKEN not in message
    assert "some-unknown-api-key-value" not in message
    assert REDACTED in message


def test_tracebacks_are_redacted() -> None:
    try:
        raise RuntimeError(f"failed calling with {API_KEY}")
    except RuntimeError as error:
        record = make_record("boom", exc=error)
    RedactingFilter([API_KEY]).filter(record)
    assert record.exc_text is not None
    assert API_KEY not in record.exc_text
    assert "RuntimeError" in record.exc_text


def test_setup_logging_applies_the_filter_to_every_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        setup_logging("INFO", secrets=[TOKEN, API_KEY])
        logging.getLogger("some.library").warning("leaking %s and %s", TOKEN, API_KEY)
        err = capsys.readouterr().err
        assert "leaking" in err
        assert TOKEN not in err
        assert API_KEY not in err
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
