"""Logging set-up, with a filter that keeps secrets out of every log line.

The bot token, the UlazAI API key and Discord interaction/webhook tokens are redacted from the message,
its arguments and any traceback, whatever logger produced them (discord.py logs request URLs that embed
interaction tokens at DEBUG level).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"

_PATTERNS = (
    # Interaction callbacks and webhooks carry a token in the path.
    re.compile(r"(/interactions/\d+/)[^/\s?\"']+"),
    re.compile(r"(/webhooks/\d+/)[^/\s?\"']+"),
    # Authorization headers, whichever scheme.
    re.compile(r"((?:Bearer|Bot)\s+)[A-Za-z0-9._\-]{8,}"),
    # A bare interaction token (base64 of "interaction:<id>:...").
    re.compile(r"()aW50ZXJhY3Rpb246[A-Za-z0-9_\-]+"),
)


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no known secret, nor anything shaped like a token, survives."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\g<1>{REDACTED}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def setup_logging(level: str, secrets: Iterable[str] = ()) -> RedactingFilter:
    """Configure the root logger once, from ``main()``; returns the filter so tests can inspect it."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py's HTTP logs are noisy at DEBUG; keep them at INFO unless asked for explicitly.
    logging.getLogger("discord.http").setLevel(max(logging.INFO, logging.getLevelName(level)))
    return redactor
