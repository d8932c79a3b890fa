"""/credits through the real bot: your own balance, and someone else's only with Manage Server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Harness, running_bot


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:
        yield h


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed["fields"]}


async def test_own_credits(harness: Harness) -> None:
    h = harness
    await h.storage.grant(h.guild_id, h.member_id, 40, actor_id=h.admin_id)
    await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
    answer = await h.answer(await h.command("credits"))
    assert answer.ephemeral
    (embed,) = answer.embeds
    assert embed["title"] == "Your video credits"
    values = fields(embed)
    assert values["Allowance left"] == "245 of 300 (weekly)"
    assert values["Bonus credits"] == "40"
    assert values["Held for videos in progress"] == "55"
    assert values["Available now"] == "285"
    assert values["Next refill"].startswith("<t:")
    assert values["Next refill"].endswith(":R>")


async def test_someone_elses_credits_need_manage_server(harness: Harness) -> None:
    h = harness
    refused = await h.answer(await h.command("credits", member=h.admin_id))
    assert refused.content == "Looking at someone else's credits needs the Manage Server permission."
    assert refused.embeds == []

    allowed = await h.answer(await h.command("credits", user_id=h.admin_id, member=h.member_id))
    (embed,) = allowed.embeds
    assert embed["title"].endswith("'s video credits")
    assert fields(embed)["Available now"] == "300"
