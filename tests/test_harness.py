"""The harness stops a bot the way a test needs: nothing the bot started outlives the bot's storage.

A command goes on after its last answer (``/video`` writes the audit line after the receipt), so a test
can end while the bot is still using its database. That is how a connection leaked and later hung the
suite (see :mod:`tests.leftovers`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import harness
from tests.harness import running_bot


def slow_audit(monkeypatch: pytest.MonkeyPatch, done: list[int], seconds: float) -> None:
    """Patch the request flow (``cogs.requesting``) so that the audit line after the receipt comes
    ``seconds`` late; ``done`` records the pool's checked-out connections once it has been written."""
    flow: Any = sys.modules["cogs.requesting"]
    real = flow.audit

    async def audit(bot: Any, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(seconds)
        await real(bot, *args, **kwargs)
        done.append(bot.storage.engine.pool.checkedout())

    monkeypatch.setattr(flow, "audit", audit)


async def ask_for_a_video(h: harness.Harness) -> None:
    await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)  # so there is a line
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    receipt = await interaction.wait_followup()  # not h.answer(), which waits for the handler to end
    assert receipt.embeds[0]["title"] == "Your video is queued"


async def test_a_command_still_running_after_its_answer_ends_before_the_storage_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[int] = []
    async with running_bot(tmp_path, worker=False) as h:
        slow_audit(monkeypatch, done, 0.5)
        await ask_for_a_video(h)
        assert done == []  # the test is over, the command is not
    assert done == [0]  # it finished, with the storage still open, and gave its connection back


async def test_a_task_of_the_bots_that_will_not_end_fails_the_test_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "SETTLE_SECONDS", 0.3)

    async def a_test_whose_command_hangs() -> None:
        async with running_bot(tmp_path, worker=False) as h:
            slow_audit(monkeypatch, [], 60)
            await ask_for_a_video(h)

    with pytest.raises(AssertionError, match=r"still running .*task 'CommandTree-invoker'"):
        await a_test_whose_command_hangs()
