"""/video text, /video image, /video jobs and the Cancel button, through the real bot.

Each test sends a real INTERACTION_CREATE to the real discord.py client and asserts on the callback,
the followup, the public status card, the provider calls and the database. A refusal must answer in one
ephemeral sentence and leave no trace: no provider call, no public message, no credits moved, no job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import JobState
from tests.fakes.discord_api import AttachmentSpec, FakeDiscord, Permission
from tests.harness import Harness, png, running_bot

PNG = png()
GIF = b"GIF89a" + bytes(64)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:  # the commands alone; delivery has its own tests
        yield h


async def assert_refused(h: Harness, interaction: Any, *fragments: str) -> None:
    """One ephemeral answer containing the fragments, and nothing else happened."""
    followup = await h.answer(interaction)
    assert followup.ephemeral
    for fragment in fragments:
        assert fragment in followup.content, followup.content
    assert followup.embeds == []
    assert h.provider_calls() == []
    assert h.public_messages() == []
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert balance.reserved == 0
    assert balance.available == balance.allowance_total


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


# -- commands and sync ---------------------------------------------------------------------------


async def test_commands_are_synced_with_the_documented_names(harness: Harness) -> None:
    commands = {c["name"]: c for c in harness.fake.synced_commands(harness.guild_id)}
    assert {"video", "credits"} <= set(commands)
    video = {o["name"]: o for o in commands["video"]["options"]}
    assert set(video) == {"text", "image", "jobs", "forget"}
    text = {o["name"]: o for o in video["text"]["options"]}
    assert list(text) == ["prompt", "model", "duration", "quality", "aspect_ratio", "sound", "multi_shot"]
    image = [o["name"] for o in video["image"]["options"]]
    assert image == [
        "prompt",
        "image",
        "start_frame",
        "end_frame",
        "model",
        "duration",
        "quality",
        "aspect_ratio",
        "sound",
        "multi_shot",
    ]
    assert text["prompt"]["required"]
    assert text["prompt"]["max_length"] == 2500
    assert [c["value"] for c in text["model"]["choices"]] == ["kling-3.0", "kling-2.6"]
    assert [c["name"] for c in text["model"]["choices"]] == ["Kling 3.0", "Kling 2.6"]
    assert (text["duration"]["min_value"], text["duration"]["max_value"]) == (3, 15)
    assert [c["value"] for c in text["quality"]["choices"]] == ["std", "pro"]
    assert [c["value"] for c in text["aspect_ratio"]["choices"]] == ["16:9", "9:16", "1:1"]
    for sub in (video["text"], video["image"]):
        for option in sub["options"]:
            assert option["description"], option["name"]
    credits = {o["name"]: o for o in commands["credits"]["options"]}
    assert credits["member"]["type"] == 6
    assert not credits["member"].get("required")


async def test_commands_are_not_synced_again_when_unchanged(tmp_path: Path) -> None:
    route = "/applications/{application_id}/guilds/{guild_id}/commands"
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        async with running_bot(tmp_path, fake=fake, worker=False):
            assert len(fake.calls_to("PUT", route)) == 1
        async with running_bot(tmp_path, fake=fake, worker=False):  # a restart on the same database
            assert len(fake.calls_to("PUT", route)) == 1
        assert len(fake.calls_to("GET", "/users/@me")) == 2  # it really did start twice


# -- the happy paths -----------------------------------------------------------------------------


async def test_text_request_defers_posts_a_card_and_reserves(harness: Harness) -> None:
    h = harness
    interaction = await h.command(
        "video",
        "text",
        prompt="A cyclist in a rainy neon city",
        model="kling-3.0",
        duration=5,
        quality="pro",
        sound=True,
    )
    callback = await interaction.wait_callback()
    assert callback.type == 5
    assert callback.ephemeral
    assert callback.elapsed < 3

    receipt = await interaction.wait_followup()
    assert receipt.ephemeral
    (embed,) = receipt.embeds
    assert embed["title"] == "Your video is queued"
    assert field(embed, "Model") == "Kling 3.0"
    assert field(embed, "Duration") == "5 s"
    assert field(embed, "Quality") == "Pro"
    assert field(embed, "Sound") == "On"
    assert field(embed, "Estimated cost") == "200 credits"
    assert field(embed, "Credits left") == "100"
    assert any(c.startswith("video:cancel:") for c in receipt.custom_ids())

    await h.handled()  # the receipt first, then the card
    (card,) = h.public_messages()
    (card_embed,) = card.embeds
    assert card_embed["description"] == "A cyclist in a rainy neon city"
    assert field(card_embed, "Requested by") == f"<@{h.member_id}>"
    assert field(card_embed, "Settings") == "Kling 3.0 · 5 s · Pro · sound on"
    assert field(card_embed, "Cost") == "200 credits"
    # No video of this kind was made here yet: the estimate is the provider's usual 60-180 s.
    assert field(card_embed, "Status") == "🕒 Queued (position 1) · ready in about 2 min"
    assert card.allowed_mentions == {"parse": []}

    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.QUEUED
    assert (job.model, job.duration, job.quality, job.sound, job.mode) == (
        "kling-3.0",
        5,
        "pro",
        True,
        "text_to_video",
    )
    assert job.estimate_credits == 200
    assert job.status_message_id == card.id
    assert job.interaction_id == interaction.id
    assert job.directory_optin is False
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (200, 100)
    assert h.provider_calls() == []  # launching is the delivery worker's job


async def test_defaults_come_from_the_server(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, default_model="kling-2.6")
    interaction = await h.command("video", "text", prompt="A dog running through a field")
    receipt = await h.answer(interaction)
    assert field(receipt.embeds[0], "Model") == "Kling 2.6"
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert (job.model, job.duration, job.quality, job.estimate_credits) == ("kling-2.6", 5, None, 55)


async def test_image_request_uploads_the_image_to_the_provider(harness: Harness) -> None:
    h = harness
    interaction = await h.command(
        "video",
        "image",
        prompt="It starts to run",
        model="kling-2.6",
        attachments={"image": AttachmentSpec(PNG, "dog.png")},
    )
    receipt = await h.answer(interaction)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (upload,) = h.provider_calls("upload")
    assert upload.status == 200
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    (url,) = job.image_urls
    assert url.startswith(h.sandbox.base_url)
    assert job.mode == "image_to_video"
    assert "1 image" in field(h.public_messages()[0].embeds[0], "Settings")


async def test_start_and_end_frames_on_kling30(harness: Harness) -> None:
    h = harness
    interaction = await h.command(
        "video",
        "image",
        prompt="From dawn to dusk",
        model="kling-3.0",
        attachments={"start_frame": AttachmentSpec(PNG, "a.png"), "end_frame": AttachmentSpec(PNG, "b.png")},
    )
    await h.answer(interaction)
    assert len(h.provider_calls("upload")) == 2
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.start_frame_url
    assert job.end_frame_url
    assert job.image_urls == []


async def test_queue_position_counts_the_jobs_ahead(harness: Harness) -> None:
    h = harness
    for prompt in ("first", "second"):
        await h.answer(await h.command("video", "text", prompt=prompt, model="kling-2.6"))
    cards = h.public_messages()
    assert [field(c.embeds[0], "Status") for c in cards] == [
        "🕒 Queued (position 1) · ready in about 2 min",
        "🕒 Queued (position 2) · ready in about 2 min",  # ten generation slots: it need not wait
    ]


# -- refusals: one sentence, nothing charged, nothing sent ---------------------------------------


@pytest.mark.parametrize(
    ("options", "attachments", "fragments"),
    [
        ({"model": "kling-2.6", "duration": 7}, None, ("Kling 2.6 makes 5 s or 10 s videos", "7 s")),
        ({"model": "kling-2.6", "quality": "pro"}, None, ("Kling 2.6 has no quality setting",)),
        ({"model": "kling-2.6", "multi_shot": True}, None, ("multi",)),
        ({"model": "kling-2.6", "prompt": "x" * 2001}, None, ("1 character", "2,000")),
    ],
)
async def test_text_refusals(
    harness: Harness, options: dict[str, Any], attachments: Any, fragments: tuple[str, ...]
) -> None:
    options = {"prompt": "A calm lake", **options}
    await assert_refused(
        harness, await harness.command("video", "text", attachments=attachments, **options), *fragments
    )


@pytest.mark.parametrize(
    ("options", "attachments", "fragments"),
    [
        ({"model": "kling-3.0"}, {}, ("image",)),
        (
            {"model": "kling-3.0", "aspect_ratio": "1:1"},
            {"start_frame": AttachmentSpec(PNG, "a.png")},
            ("aspect",),
        ),
        (
            {"model": "kling-2.6"},
            {"image": AttachmentSpec(PNG, "a.png"), "start_frame": AttachmentSpec(PNG, "b.png")},
            ("2.6",),
        ),
        (
            {"model": "kling-3.0"},
            {"image": AttachmentSpec(GIF, "looks-like.png", "image/png")},
            ("not a JPEG, PNG or WebP",),
        ),
        (
            {"model": "kling-3.0"},
            {"image": AttachmentSpec(b"\x89PNG\r\n\x1a\n" + bytes(10_000_000), "huge.png")},
            ("10 MB",),
        ),
    ],
)
async def test_image_refusals(
    harness: Harness, options: dict[str, Any], attachments: Any, fragments: tuple[str, ...]
) -> None:
    interaction = await harness.command(
        "video", "image", prompt="Animate it", attachments=attachments, **options
    )
    await assert_refused(harness, interaction, *fragments)


async def test_an_oversized_attachment_is_refused_before_downloading(harness: Harness) -> None:
    h = harness
    big = AttachmentSpec(b"\x89PNG\r\n\x1a\n" + bytes(10_000_000), "huge.png")
    await assert_refused(
        h, await h.command("video", "image", prompt="x", attachments={"image": big}), "10 MB"
    )
    assert not [c for c in h.fake.calls if c.route.startswith("CDN")]


async def test_a_channel_outside_the_allowlist_is_refused(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, allowed_channel_ids=[h.general])
    interaction = await h.command("video", "text", prompt="A calm lake")
    await assert_refused(h, interaction, "Videos can't be made in this channel", f"<#{h.general}>")


async def test_a_blocklisted_term_is_refused(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, blocklist_terms=["gore"])
    interaction = await h.command("video", "text", prompt="A ＧＯＲＥ festival at night")
    await assert_refused(h, interaction, "something this server does not allow", "rephrase")
    refusal = await interaction.wait_followup()
    assert "gore" not in refusal.content.casefold()  # members must not learn the list by probing


async def test_missing_bot_permissions_are_named(harness: Harness) -> None:
    h = harness
    granted = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.EMBED_LINKS
    interaction = await h.command("video", "text", prompt="A calm lake", app_permissions=int(granted))
    await assert_refused(h, interaction, "I need the Attach Files permission")


async def test_not_enough_credits_is_refused_with_the_numbers(harness: Harness) -> None:
    h = harness
    interaction = await h.command(
        "video", "text", prompt="A calm lake", model="kling-3.0", duration=15, quality="pro", sound=True
    )
    await assert_refused(h, interaction, "costs 600 credits and you have 300", "<t:")


async def test_the_active_job_cap_is_enforced(harness: Harness) -> None:
    h = harness
    for prompt in ("one", "two"):
        await h.answer(await h.command("video", "text", prompt=prompt, model="kling-2.6"))
    followup = await h.answer(await h.command("video", "text", prompt="three", model="kling-2.6"))
    assert "You already have 2 videos in progress" in followup.content
    assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 2


@pytest.mark.parametrize(
    ("status", "fragment"),
    [(402, "video credits are used up"), (401, "The bot is misconfigured")],
)
async def test_provider_refusals_on_upload_are_explained_and_charge_nothing(
    harness: Harness, status: int, fragment: str
) -> None:
    h = harness
    h.sandbox.inject("upload", status=status)
    interaction = await h.command(
        "video", "image", prompt="Animate it", attachments={"image": AttachmentSpec(PNG, "a.png")}
    )
    followup = await h.answer(interaction)
    assert fragment in followup.content
    assert h.public_messages() == []
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []
    assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 0


# -- safety ---------------------------------------------------------------------------------------


async def test_user_text_can_never_ping_anyone(harness: Harness) -> None:
    h = harness
    role = h.fake.role_ids["Admin"]
    prompt = f"@everyone @here <@&{role}> <@{h.admin_id}> look at this"
    receipt = await h.answer(await h.command("video", "text", prompt=prompt, model="kling-2.6"))
    (card,) = h.public_messages()
    assert card.embeds[0]["description"] == prompt
    assert card.content == ""
    assert card.allowed_mentions == {"parse": []}
    assert receipt.allowed_mentions == {"parse": []}
    for call in h.fake.calls:
        if (
            call.method in {"POST", "PATCH"}
            and isinstance(call.json, dict)
            and ("content" in call.json or "embeds" in call.json)
        ):
            mentions = call.json.get("allowed_mentions") or (call.json.get("data") or {}).get(
                "allowed_mentions"
            )
            assert mentions is not None, call.path
            assert mentions.get("parse") == [], call.path
            assert not mentions.get("roles")


# -- review, directory, cancel --------------------------------------------------------------------


async def test_with_a_review_channel_the_job_waits_for_review(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
    receipt = await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
    assert receipt.embeds[0]["title"] == "Sent for review"
    assert "A moderator reviews every request" in receipt.embeds[0]["description"]
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.PENDING_REVIEW
    assert field(h.public_messages()[0].embeds[0], "Status") == "⏳ Waiting for a moderator's review"


async def test_the_directory_discount_is_announced(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, directory_discount=True)
    quote = await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
    assert "will be published in UlazAI's public directory" in quote.embeds[0]["description"]
    receipt = await h.confirmed(quote)  # publishing needs the member's click (tests/cogs/test_quotes.py)
    assert "Prompt Directory" in receipt.embeds[0]["description"]
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.directory_optin is True
    assert job.estimate_credits == 55  # the undiscounted price is held; the provider's figure settles it


async def test_cancel_returns_the_credits_and_updates_the_card(harness: Harness) -> None:
    h = harness
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    receipt = await h.answer(interaction)
    (custom_id,) = [c for c in receipt.custom_ids() if c.startswith("video:cancel:")]

    stranger = await h.fake.send_component(
        custom_id, message_id=receipt.id, user_id=h.admin_id, channel_id=h.videos
    )
    assert (await stranger.wait_callback()).type == 6  # acknowledged before the job is looked up
    refusal = await stranger.wait_followup()
    assert refusal.ephemeral
    assert "Only the member who asked" in refusal.content

    press = await h.fake.send_component(
        custom_id, message_id=receipt.id, user_id=h.member_id, channel_id=h.videos
    )
    assert (await press.wait_callback()).type == 6
    answer = await press.wait_original(lambda m: "Cancelled" in m.content)
    assert answer.id == receipt.id
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.CANCELLED
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, 300)
    (card,) = h.public_messages()
    await h.fake.wait_for_call(lambda c: c.method == "PATCH" and c.path.endswith(f"/messages/{card.id}"))
    assert field(card.embeds[0], "Status") == "↩️ Cancelled, credits returned"

    again = await h.fake.send_component(
        custom_id, message_id=receipt.id, user_id=h.member_id, channel_id=h.videos, validate=False
    )
    assert "nothing to cancel" in (await again.wait_followup()).content


async def test_a_cancel_pressed_before_the_card_is_out_shows_on_the_card(harness: Harness) -> None:
    """The receipt comes before the card: a Cancel pressed while the card is still on its way (Discord
    slowed its post with a 429) is drawn on the card as soon as the card exists."""
    h = harness
    h.fake.fail_next("POST /channels/{channel_id}/messages", 429, retry_after=1.0)
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    receipt = await interaction.wait_followup()
    assert h.public_messages() == []  # the card is not out yet
    press = await h.press(receipt, "video:cancel:", channel_id=h.videos)
    assert (await press.wait_callback()).type == 6
    await press.wait_original(lambda m: "Cancelled" in m.content)
    await h.handled()
    (card,) = h.public_messages()
    assert field(card.embeds[0], "Status") == "↩️ Cancelled, credits returned"
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert (job.state, job.status_message_id) == (JobState.CANCELLED, card.id)
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300


async def test_jobs_lists_the_members_recent_jobs_with_links(harness: Harness) -> None:
    h = harness
    empty = await h.command("video", "jobs")
    assert "no videos here yet" in (await h.answer(empty)).content
    await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
    listing = await h.answer(await h.command("video", "jobs"))
    (embed,) = listing.embeds
    (card,) = h.public_messages()
    assert "Queued" in embed["description"]
    assert "Kling 2.6 5 s" in embed["description"]
    assert "55 credits" in embed["description"]
    assert f"/{h.guild_id}/{h.videos}/{card.id}" in embed["description"]
    other = await h.answer(await h.command("video", "jobs", user_id=h.admin_id))
    assert "no videos here yet" in other.content
