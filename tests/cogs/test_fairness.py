"""The fair queue through the real bot: with one generation at a time, a member's second request waits
behind another member's first, even when their first was already being made when the other asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage import JobState
from tests.cogs.test_delivery import FAST, request, wait_state
from tests.harness import running_bot


async def test_one_slot_serves_a_then_b_then_a_again(tmp_path: Path) -> None:
    async with running_bot(tmp_path, max_concurrent_generations=1) as h:
        h.sandbox.estimated_time.update(FAST)
        await h.storage.update_guild_settings(h.guild_id, max_active_jobs=5)
        await h.storage.grant(h.guild_id, h.member_id, 1000, actor_id=h.admin_id)
        h.sandbox.task_seconds = 3.0  # A's first stays at the provider while B asks
        a = [await request(h, prompt=f"member A, video {n}") for n in (1, 2, 3)]
        await wait_state(h, a[0], JobState.PROCESSING)
        h.sandbox.task_seconds = 1.0
        b = await request(h, user_id=h.admin_id, prompt="member B, video 1")
        # B's card, posted after A's, already shows B first in line (the order the queue serves).
        (card,) = [
            m for m in h.public_messages() if m.embeds and m.embeds[0]["description"] == "member B, video 1"
        ]
        assert card.request is not None
        status = next(f for f in card.request.json["embeds"][0]["fields"] if f["name"] == "Status")
        assert status["value"].startswith("🕒 Queued (position 1)")  # then, since issue 12, its ETA
        assert await h.storage.queue_position(a[1]) == 2
        for job_id in (*a, b):
            await wait_state(h, job_id, JobState.DELIVERED, within=30)
        await asyncio.sleep(0)
        prompts = [call.json_body["prompt"] for call in h.provider_calls("generate")]
        assert prompts == ["member A, video 1", "member B, video 1", "member A, video 2", "member A, video 3"]
