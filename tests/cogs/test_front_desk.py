"""Receipts before cards: in a burst, every member's receipt goes out before any status card
(:mod:`cogs.front_desk`), through the real bot; and the front desk's waiting rules on their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.front_desk import FrontDesk
from tests.harness import Harness, running_bot

BURST = 12


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:
        yield h


def arrived(message: object) -> float:
    """When the fake received the message (a deferred answer's receipt is an edit of it)."""
    edits = getattr(message, "edits", [])
    call = edits[0] if edits else getattr(message, "request", None)
    assert call is not None
    at: float = call.at
    return at


async def test_in_a_burst_every_receipt_goes_out_before_the_first_card(harness: Harness) -> None:
    """The order members see, and every card still comes. (Without the worker, the database pool's
    first-come order alone mostly gives this order too; the waiting rules are tested below.)"""
    h = harness
    await h.storage.update_guild_settings(h.guild_id, confirm_above_credits=0)
    members = [h.fake.add_member(h.guild_id, name=f"burst-{n}").user_id for n in range(BURST)]
    for user_id in members:
        await h.storage.grant(h.guild_id, user_id, 1_000, actor_id=h.admin_id, reason="test")
    interactions = await asyncio.gather(
        *(
            h.command("video", "text", prompt=f"A lighthouse, take {n}", user_id=user_id, model="kling-2.6")
            for n, user_id in enumerate(members)
        )
    )
    receipts = [await h.answer(interaction) for interaction in interactions]
    assert all(receipt.embeds[0]["title"] == "Your video is queued" for receipt in receipts)
    await h.handled()
    cards = h.public_messages()
    assert len(cards) == BURST
    assert max(map(arrived, receipts)) < min(map(arrived, cards))
    for user_id in members:
        (job,) = await h.storage.list_jobs(h.guild_id, user_id)
        assert job.status_message_id in {card.id for card in cards}


async def test_the_front_desk_lets_waiting_work_pass_when_the_last_receipt_is_out() -> None:
    desk = FrontDesk(most_a_card_waits=5.0)
    await asyncio.wait_for(desk.after_receipts(), 0.1)  # nobody waiting: at once
    passed: list[str] = []

    async def card(name: str) -> None:
        await desk.after_receipts()
        passed.append(name)

    with desk.until_receipt():
        with desk.until_receipt():
            waiting = asyncio.create_task(card("card"))
            await asyncio.sleep(0.05)
            assert (desk.serving, passed) == (2, [])
        await asyncio.sleep(0.05)
        assert (desk.serving, passed) == (1, [])  # one request still before its receipt
    await asyncio.wait_for(waiting, 1.0)
    assert (desk.serving, passed) == (0, ["card"])


async def test_a_refused_request_leaves_the_front_desk_too() -> None:
    desk = FrontDesk()
    with pytest.raises(ValueError, match="refused"), desk.until_receipt():
        raise ValueError("refused")
    assert desk.serving == 0
    await asyncio.wait_for(desk.after_receipts(), 0.1)


async def test_a_card_waits_at_most_its_limit_behind_a_stream_of_requests() -> None:
    desk = FrontDesk(most_a_card_waits=0.2)
    with desk.until_receipt():
        started = time.monotonic()
        await desk.after_receipts()
        waited = time.monotonic() - started
    assert 0.19 <= waited < 1.0
