"""The price before anything is spent, through the real bot: quotes, Confirm, Cancel, expiry, restarts.

Until Confirm nothing is held, queued, uploaded or sent for review: each test checks the provider's calls,
the public channel, the review channel, Discord's CDN and the member's credits while a quote is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from generation import quotes
from storage import Job, JobState, QuoteState
from tests.fakes.discord_api import AttachmentSpec, FakeDiscord, FakeInteraction, FakeMessage
from tests.harness import Harness, png, running_bot
from tests.storage.helpers import check_ledger

FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}
#: 150 credits: Kling 3.0 Standard with sound, 5 s (30 a second).
PRICEY: dict[str, Any] = {"model": "kling-3.0", "duration": 5, "sound": True}
#: 60 credits: Kling 3.0 Standard, 3 s.
CHEAP: dict[str, Any] = {"model": "kling-3.0", "duration": 3}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        yield h


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


async def admin(h: Harness, subcommand: str, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", subcommand, user_id=h.admin_id, **options)
    )
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def ask(h: Harness, prompt: str, *, user_id: int | None = None, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("video", "text", prompt=prompt, user_id=user_id, **options)
    )
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def available(h: Harness) -> str:
    (embed,) = (await h.answer(await h.command("credits"))).embeds
    return field(embed, "Available now")


def is_quote(message: FakeMessage) -> bool:
    return bool(message.embeds) and message.embeds[0]["title"] == "Confirm your video"


async def wait_state(h: Harness, job_id: int, state: JobState, within: float = 20) -> Job:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        job = await h.storage.get_job(job_id)
        assert job is not None
        if job.state is state:
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job {job_id} is {job.state}, not {state}"
        await asyncio.sleep(0.05)


def videos_posted(h: Harness) -> list[FakeMessage]:
    return [m for m in h.public_messages() if not m.embeds]


async def stale_press(h: Harness, custom_id: str) -> FakeInteraction:
    """A press from a client still showing an old copy of the quote (the member's other device): the
    interaction carries a message as it was, which the bot can no longer edit."""
    return await h.fake.send_component(custom_id, message_id=1, channel_id=h.videos, user_id=h.member_id)


def labels(message: FakeMessage) -> list[tuple[str, bool]]:
    return [(c["label"], bool(c.get("disabled"))) for row in message.components for c in row["components"]]


async def test_above_the_threshold_the_price_comes_first(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    answer = await admin(h, "confirm", credits=100)
    assert answer.content.startswith(
        "A request estimated above 100 credits now shows its member the price first"
    )
    before = await available(h)

    interaction = await h.command("video", "text", prompt="A lighthouse in a storm", **PRICEY)
    quote = await h.answer(interaction)
    assert is_quote(quote)
    (embed,) = quote.embeds
    assert field(embed, "Settings") == "Kling 3.0 · 5 s · Standard · sound on"
    assert (field(embed, "Cost"), field(embed, "Credits after")) == ("150 credits", "150")
    assert "Nothing is held, queued or sent until you press **Confirm**." in embed["description"]
    assert "public directory" not in embed["description"]
    assert "expires <t:" in embed["description"]
    assert labels(quote) == [("Confirm", False), ("Cancel", False)]
    await asyncio.sleep(1)  # a few worker passes: still nothing
    assert await available(h) == before == "300"
    assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 0
    assert h.public_messages() == []  # no status card
    assert h.provider_calls() == []
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []

    stranger = await h.press(quote, "quote:confirm:", user_id=h.admin_id)
    refusal = await stranger.wait_callback()
    assert (refusal.type, refusal.ephemeral) == (4, True)
    assert refusal.content == "Only the member who asked for this video can confirm or cancel it."

    quote_id = int(quote.custom_ids()[0].split(":")[-1])
    receipt = await h.confirmed(quote)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    assert field(receipt.embeds[0], "Estimated cost") == "150 credits"
    assert quote.content == "✅ Confirmed."
    assert labels(quote) == [("Confirmed", True)]
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.interaction_id == interaction.id  # the original request's: a quote makes one job at most
    assert job.id is not None
    delivered = await wait_state(h, job.id, JobState.DELIVERED)
    (video,) = videos_posted(h)
    assert video.id == delivered.posted_message_id
    (generate,) = h.provider_calls("generate")
    assert generate.json_body["prompt"] == "A lighthouse in a storm"
    stored = await h.storage.get_quote(quote_id)
    assert stored is not None
    assert (stored.state, stored.request) == (QuoteState.CONFIRMED, {})

    again = await stale_press(h, f"quote:confirm:{quote_id}")  # pressed once more
    assert (await again.wait_callback()).type == 6
    assert (await again.wait_followup()).content == "You already confirmed this quote; see `/video jobs`."
    assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 1

    # A second quote, left alone, expires (a short life for the test).
    monkeypatch.setattr(quotes, "QUOTE_LIFETIME", timedelta(seconds=1))
    second = await ask(h, "A second lighthouse", **PRICEY)
    assert is_quote(second)
    second_id = int(second.custom_ids()[0].split(":")[-1])
    await h.fake.wait_for_call(lambda c: c.method == "PATCH" and c.path.endswith(f"/messages/{second.id}"))
    assert second.content.startswith("This quote expired: nothing was held or sent.")
    assert labels(second) == [("Quote expired", True)]
    late = await stale_press(h, f"quote:confirm:{second_id}")
    assert (await late.wait_callback()).type == 6
    assert (await late.wait_followup()).content.startswith("This quote expired")
    assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 1
    assert len(h.provider_calls("generate")) == 1

    receipt = await ask(h, "A quick sketch", **CHEAP)  # 60 credits: straight through
    assert receipt.embeds[0]["title"] == "Your video is queued"
    assert field(receipt.embeds[0], "Estimated cost") == "60 credits"
    await check_ledger(h.storage)


async def test_with_review_on_nothing_reaches_the_moderators_before_confirm(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        mods = h.general
        await admin(h, "review", channel=mods)
        await admin(h, "confirm", credits=100)
        quote = await ask(h, "A storm over the sea", **PRICEY)
        assert "A moderator then reviews the request" in quote.embeds[0]["description"]
        cancel = await h.press(quote, "quote:cancel:")
        assert (await cancel.wait_callback()).type == 6
        await h.fake.wait_for_call(lambda c: c.method == "PATCH" and cancel.token in c.path)
        assert quote.content == "Cancelled: nothing was held or sent."
        assert labels(quote) == [("Cancelled", True)]
        assert h.public_messages(mods) == []
        assert await h.storage.list_jobs(h.guild_id, h.member_id) == []

        receipt = await h.confirmed(await ask(h, "A calmer sea", **PRICEY))
        assert receipt.embeds[0]["title"] == "Sent for review"
        (card,) = h.public_messages(mods)
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        assert (job.state, job.review_message_id, job.estimate_credits) == (
            JobState.PENDING_REVIEW,
            card.id,
            150,
        )
        assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 150


async def test_the_directory_discount_asks_every_time_and_opts_in_only_after_confirm(
    harness: Harness,
) -> None:
    h = harness
    await admin(h, "confirm", credits=0)
    answer = await admin(h, "directory", enabled=True)
    assert answer.content.startswith("The Prompt Directory discount is on")
    quote = await ask(h, "A fox in the snow", model="kling-2.6")  # 55 credits, threshold 0: still asked
    assert is_quote(quote)
    assert (
        "This server uses UlazAI's Prompt Directory discount: your prompt and video will be published in "
        "UlazAI's public directory." in quote.embeds[0]["description"]
    )
    await asyncio.sleep(1)
    assert h.provider_calls() == []
    await h.confirmed(quote)
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.id is not None
    await wait_state(h, job.id, JobState.DELIVERED)
    (generate,) = h.provider_calls("generate")
    assert generate.json_body["prompt_directory_optin"] is True

    await admin(h, "directory", enabled=False)
    receipt = await ask(h, "A fox in the rain", model="kling-2.6")  # threshold 0, directory off: no quote
    assert receipt.embeds[0]["title"] == "Your video is queued"
    job, _ = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.id is not None
    await wait_state(h, job.id, JobState.DELIVERED)
    assert h.provider_calls("generate")[-1].json_body["prompt_directory_optin"] is False


async def test_a_confirm_after_the_directory_was_turned_on_asks_again(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        await admin(h, "confirm", credits=100)
        quote = await ask(h, "A quiet harbour", **PRICEY)
        assert "public directory" not in quote.embeds[0]["description"]
        await admin(h, "directory", enabled=True)
        again = await h.confirmed(quote)  # the member never saw the publication sentence
        assert is_quote(again)
        assert "will be published in UlazAI's public directory" in again.embeds[0]["description"]
        assert await h.storage.list_jobs(h.guild_id, h.member_id) == []
        receipt = await h.confirmed(again)
        assert receipt.embeds[0]["title"] == "Your video is queued"
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        assert job.directory_optin is True


async def test_confirm_checks_everything_again(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        await admin(h, "confirm", credits=100)
        await h.storage.update_guild_settings(h.guild_id, max_active_jobs=5)
        quoted = [await ask(h, f"Scene {n}", **PRICEY) for n in range(3)]  # 3 x 150, with 300 to spend
        assert all(is_quote(quote) for quote in quoted)
        for quote in quoted[:2]:
            assert (await h.confirmed(quote)).embeds[0]["title"] == "Your video is queued"
        refused = await h.confirmed(quoted[2])  # the balance changed since this quote
        assert refused.content.startswith("This video costs 150 credits and you have 0.")
        assert quoted[2].content == "✅ Confirmed."  # decided, and refused: the member asks again later
        assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 2
        await check_ledger(h.storage)


async def test_an_attachment_is_read_and_uploaded_only_after_confirm(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        await admin(h, "confirm", credits=100)
        interaction = await h.command(
            "video",
            "image",
            prompt="It wakes up",
            attachments={"image": AttachmentSpec(png(), "cat.png")},
            **PRICEY,
        )
        quote = await h.answer(interaction)
        assert is_quote(quote)
        assert "1 image" in field(quote.embeds[0], "Settings")
        assert h.provider_calls() == []
        assert not [c for c in h.fake.calls if c.route.startswith("CDN")]
        await h.confirmed(quote)
        assert [c for c in h.fake.calls if c.route.startswith("CDN")]
        (upload,) = h.provider_calls("upload")
        assert upload.status == 200
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        (url,) = job.image_urls
        assert url.startswith(h.sandbox.base_url)


async def test_regenerate_is_quoted_the_same_way(harness: Harness) -> None:
    h = harness
    await ask(h, "A paper boat", model="kling-2.6")
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.id is not None
    await wait_state(h, job.id, JobState.DELIVERED)
    (video,) = videos_posted(h)
    await admin(h, "confirm", credits=50)
    press = await h.press(video, "video:regen:", user_id=h.admin_id)
    quote = await h.answer(press)
    assert is_quote(quote)
    assert field(quote.embeds[0], "Cost") == "55 credits"
    assert len(await h.storage.list_jobs(h.guild_id, h.admin_id)) == 0
    receipt = await h.confirmed(quote, user_id=h.admin_id)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (copy,) = await h.storage.list_jobs(h.guild_id, h.admin_id)
    assert (copy.prompt, copy.interaction_id) == ("A paper boat", press.id)


async def test_a_quote_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        async with running_bot(tmp_path, fake=fake, database_url=url, worker=False) as h:
            await admin(h, "confirm", credits=100)
            kept = await ask(h, "Kept across a restart", **PRICEY)
            monkeypatch.setattr(quotes, "QUOTE_LIFETIME", timedelta(seconds=2))
            late = await ask(h, "Expires while the bot is away", **PRICEY)
        await asyncio.sleep(2)
        async with running_bot(tmp_path, fake=fake, database_url=url, worker=False) as h:
            receipt = await h.confirmed(kept)
            assert receipt.embeds[0]["title"] == "Your video is queued"
            (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
            assert job.prompt == "Kept across a restart"
            press = await h.press(late, "quote:confirm:")
            assert (await press.wait_callback()).type == 6
            await h.fake.wait_for_call(lambda c: c.method == "PATCH" and press.token in c.path)
            assert late.content.startswith("This quote expired")
            assert labels(late) == [("Quote expired", True)]
            assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 1
