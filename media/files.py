"""Small file chores of :mod:`media`, each done in a thread so none blocks the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["file_size", "new_temp_path", "remove_quietly"]


def _make_temp(suffix: str) -> Path:
    handle, name = tempfile.mkstemp(prefix="kling-media-", suffix=suffix)
    os.close(handle)
    return Path(name)


async def new_temp_path(suffix: str) -> Path:
    """A new empty file in the system's temporary folder; the caller deletes it."""
    return await asyncio.to_thread(_make_temp, suffix)


async def file_size(path: Path) -> int:
    return (await asyncio.to_thread(path.stat)).st_size


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it is there (a half-written output after a failure)."""
    await asyncio.to_thread(_unlink, path)
