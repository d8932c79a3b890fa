"""Continue, Remix and Animate with Kling through the real bot, the fake Discord and the sandbox.

A posted video's buttons are pressed as component interactions, their modals submitted as Discord's
client submits them (also after a restart of the bot), and "Animate with Kling" is used from a
message's menu; the tests assert on the modals, the uploads and generate calls the sandbox received,
the posted messages, the receipts and the ledger.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import media
from sandbox import SAMPLE_PATH, Sandbox
from storage import Job, JobOrigin, JobState
from tests.cogs.test_delivery import FAST, posted, wait_state
from tests.fakes.discord_api import AttachmentSpec, FakeDiscord, FakeMessage
from tests.harness import API_KEY, Harness, png, running_bot
from tests.media.clips import FFMPEG, colour_clip, image_size
from tests.storage.helpers import check_ledger

SAMPLE = SAMPLE_PATH.read_bytes()
PNG = png(4, 3)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        # These tests are about iterating, not quotes: requests go straight through (test_quotes.py).
        await h.storage.update_guild_settings(
            h.guild_id, allowance_credits=2000, max_active_jobs=5, confirm_above_credits=0
        )
        yield h


async def delivered(h: Harness, command: str = "text", **options: Any) -> tuple[Job, FakeMessage]:
    """A member's video, made and posted: its job and the posted message."""
    options = {"prompt": "A lighthouse at dusk", "model": "kling-3.0", **options}
    receipt = await h.answer(await h.command("video", command, **options))
    assert receipt.embeds, receipt.content
    (job, *_) = await h.storage.list_jobs(h.guild_id, h.member_id, limit=1)
    assert job.id is not None
    job = await wait_state(h, job.id, JobState.DELIVERED)
    video = h.fake.messages[job.posted_message_id or 0]
    return job, video


async def open_modal(h: Harness, button: str, job: Job, video: FakeMessage, user_id: int) -> Any:
    """Press ``button`` under the video; the answer must be its modal."""
    pressed = await h.fake.send_component(f"video:{button}:{job.id}", message_id=video.id, user_id=user_id)
    opened = await pressed.wait_callback()
    assert opened.type == 9, opened.data  # the modal is the acknowledgement
    return opened


async def submit(h: Harness, custom_id: str, values: dict[str, str], user_id: int, **kwargs: Any) -> Any:
    """Submit a modal and return the member's answer (a deferral first, then one private followup)."""
    return await h.answer(await h.fake.send_modal_submit(custom_id, values, user_id=user_id, **kwargs))


def inputs(opened: Any) -> dict[str, dict[str, Any]]:
    return {c["custom_id"]: c for row in opened.data["components"] for c in row["components"]}


def upload_of(h: Harness, url: str) -> bytes:
    """The bytes the sandbox received for the upload now at ``url``."""
    return h.sandbox.uploads[url.rsplit("/", 1)[1]][0]


def pixels(data: bytes) -> bytes:
    """An image decoded to raw RGB by ffmpeg (tests only: a blocking call, run in a thread)."""
    done = subprocess.run(  # noqa: S603 - our own binary, our own arguments
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            "pipe:0",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout


async def last_frame_of(video: bytes, tmp_path: Path) -> bytes:
    """What :func:`media.last_frame` makes of ``video``: the picture a continuation must start from."""
    path = tmp_path / "video.mp4"
    await asyncio.to_thread(path.write_bytes, video)
    still = await media.last_frame(path)
    try:
        return await asyncio.to_thread(still.path.read_bytes)
    finally:
        await asyncio.to_thread(still.path.unlink)


async def assert_same_picture(uploaded: bytes, expected: bytes) -> None:
    assert image_size(uploaded) == image_size(expected)
    assert await asyncio.to_thread(pixels, uploaded) == await asyncio.to_thread(pixels, expected)


async def generated(h: Harness, count: int) -> list[Any]:
    """The sandbox's generate calls, once there are ``count`` (the worker submits in the background)."""
    for _ in range(200):
        if len(calls := h.provider_calls("generate")) >= count:
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(h.provider_calls('generate'))} generate calls, not {count}")


async def newest_job(h: Harness, user_id: int) -> Job:
    (job, *_) = await h.storage.list_jobs(h.guild_id, user_id, limit=1)
    return job


# -- the buttons -----------------------------------------------------------------------------------


async def test_continue_starts_kling_3_from_the_last_frame_of_the_posted_video(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    job, video = await delivered(h, aspect_ratio="16:9", quality="pro", sound=True, duration=6)
    h.sandbox.serve_video(await asyncio.to_thread(colour_clip(tmp_path / "other.mp4").read_bytes))

    opened = await open_modal(h, "continue", job, video, h.admin_id)
    assert (opened.data["custom_id"], opened.data["title"]) == (
        f"video:continue-modal:{job.id}",
        "Continue this video",
    )
    fields = inputs(opened)
    assert set(fields) == {"prompt", "duration"}
    assert (fields["prompt"]["required"], fields["prompt"]["max_length"]) == (True, 2500)
    assert fields["duration"]["required"] is False
    assert h.provider_calls("upload") == []  # nothing before the submission

    receipt = await submit(
        h, f"video:continue-modal:{job.id}", {"prompt": "The keeper walks out", "duration": ""}, h.admin_id,
        message_id=video.id,
    )  # fmt: skip
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (upload,) = h.provider_calls("upload")
    continuation = await newest_job(h, h.admin_id)
    assert continuation.start_frame_url is not None
    # The posted file's last frame, not the provider's video (which now serves another clip).
    await assert_same_picture(
        upload_of(h, continuation.start_frame_url), await last_frame_of(h.fake.attachment_bytes(video.attachments[0]), tmp_path)
    )  # fmt: skip
    first, second = await generated(h, 2)
    assert upload.time < second.time
    assert second.path.startswith("/kling30/")
    assert second.json_body["generationMode"] == "image_to_video"
    assert second.json_body["startFrameUrl"] == continuation.start_frame_url
    assert "aspectRatio" not in second.json_body
    assert "imageUrls" not in second.json_body
    assert second.json_body["prompt"] == "The keeper walks out"
    for key in ("durationSeconds", "qualityMode", "sound"):
        assert second.json_body[key] == first.json_body[key], key
    assert (continuation.origin, continuation.parent_job_id) == (JobOrigin.CONTINUE, job.id)
    card = h.fake.messages[continuation.status_message_id or 0]
    assert card.embeds[0]["footer"]["text"] == f"Job #{continuation.id} · continued from #{job.id}"

    continuation = await wait_state(h, continuation.id or 0, JobState.DELIVERED)
    await asyncio.sleep(1)  # more worker passes: nothing is posted again
    assert len(posted(h)) == 2
    assert len(h.provider_calls("generate")) == 2
    # Charged to whoever pressed: Kling 3.0 Pro with sound, 6 s.
    assert (await h.storage.balance(h.guild_id, h.admin_id)).available == 2000 - (
        continuation.credits_used or 0
    )
    await check_ledger(h.storage)


async def test_a_kling_26_video_continues_on_kling_30_and_the_receipt_says_so(harness: Harness) -> None:
    h = harness
    job, video = await delivered(h, model="kling-2.6", duration=10)
    await open_modal(h, "continue", job, video, h.member_id)
    receipt = await submit(
        h, f"video:continue-modal:{job.id}", {"prompt": "Then it rains", "duration": "8"}, h.member_id,
        message_id=video.id,
    )  # fmt: skip
    assert "Kling 2.6 videos continue on Kling 3.0" in receipt.embeds[0]["description"]
    assert {f["name"]: f["value"] for f in receipt.embeds[0]["fields"]}["Model"] == "Kling 3.0"
    _, second = await generated(h, 2)
    assert second.path.startswith("/kling30/")
    assert (second.json_body["durationSeconds"], second.json_body["qualityMode"]) == (8, "std")
    assert second.json_body["startFrameUrl"] == (await newest_job(h, h.member_id)).start_frame_url


@pytest.mark.parametrize("duration", ["20", "abc", "2", "7.5"])
async def test_a_bad_duration_is_refused_in_one_sentence_with_nothing_charged(
    harness: Harness, duration: str
) -> None:
    h = harness
    job, video = await delivered(h)
    before = await h.storage.balance(h.guild_id, h.admin_id)
    await open_modal(h, "continue", job, video, h.admin_id)
    answer = await submit(
        h, f"video:continue-modal:{job.id}", {"prompt": "More", "duration": duration}, h.admin_id,
        message_id=video.id,
    )  # fmt: skip
    assert answer.ephemeral
    assert answer.embeds == []
    assert "whole number of seconds from 3 to 15" in answer.content
    assert "nothing was charged" in answer.content
    assert h.provider_calls("upload") == []
    assert len(h.provider_calls("generate")) == 1
    assert await h.storage.list_jobs(h.guild_id, h.admin_id) == []
    assert await h.storage.balance(h.guild_id, h.admin_id) == before


async def test_an_empty_prompt_is_refused_with_nothing_charged(harness: Harness) -> None:
    h = harness
    job, video = await delivered(h)
    await open_modal(h, "remix", job, video, h.admin_id)
    answer = await submit(
        h, f"video:remix-modal:{job.id}", {"prompt": "   "}, h.admin_id, message_id=video.id
    )
    assert answer.content == "The prompt is empty; describe what the video should show. Nothing was charged."
    assert len(h.provider_calls("generate")) == 1
    assert await h.storage.list_jobs(h.guild_id, h.admin_id) == []


async def test_with_review_on_a_continuation_waits_for_a_moderator(harness: Harness) -> None:
    h = harness
    job, video = await delivered(h)
    await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
    await open_modal(h, "continue", job, video, h.admin_id)
    receipt = await submit(
        h, f"video:continue-modal:{job.id}", {"prompt": "Night falls"}, h.admin_id, message_id=video.id
    )
    assert receipt.embeds[0]["title"] == "Sent for review"
    continuation = await newest_job(h, h.admin_id)
    assert continuation.state is JobState.PENDING_REVIEW
    review_card = h.fake.messages[continuation.review_message_id or 0]
    assert review_card.channel_id == h.general
    assert continuation.start_frame_url is not None
    assert continuation.start_frame_url in str(review_card.embeds[0])  # the moderator sees the frame
    await asyncio.sleep(1.5)
    assert len(h.provider_calls("generate")) == 1  # nothing starts before a moderator says so
    assert (await h.storage.balance(h.guild_id, h.admin_id)).reserved == continuation.estimate_credits


async def test_continue_falls_back_to_the_providers_link_when_the_file_is_gone(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    job, video = await delivered(h)
    other = await asyncio.to_thread(colour_clip(tmp_path / "other.mp4").read_bytes)
    h.sandbox.serve_video(other)
    for path in [p for p in h.fake._cdn if str(video.attachments[0]["id"]) in p]:
        del h.fake._cdn[path]  # the CDN no longer serves the posted file
    await open_modal(h, "continue", job, video, h.member_id)
    await submit(h, f"video:continue-modal:{job.id}", {"prompt": "On"}, h.member_id, message_id=video.id)
    continuation = await newest_job(h, h.member_id)
    assert continuation.start_frame_url is not None
    await assert_same_picture(
        upload_of(h, continuation.start_frame_url), await last_frame_of(other, tmp_path)
    )


async def test_remix_sends_the_edited_prompt_with_the_original_settings_and_images(harness: Harness) -> None:
    h = harness
    job, video = await delivered(
        h, "image", image=AttachmentSpec(PNG, "cat.png"), duration=7, quality="pro", sound=True, aspect_ratio="9:16"
    )  # fmt: skip
    await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
    opened = await open_modal(h, "remix", job, video, h.admin_id)
    assert (opened.data["custom_id"], opened.data["title"]) == (
        f"video:remix-modal:{job.id}",
        "Remix this video",
    )
    assert inputs(opened)["prompt"]["value"] == "A lighthouse at dusk"  # prefilled, editable

    receipt = await submit(
        h, f"video:remix-modal:{job.id}", {"prompt": "A lighthouse at dawn"}, h.admin_id, message_id=video.id
    )
    assert receipt.embeds[0]["title"] == "Your video is queued"
    first, second = await generated(h, 2)
    assert second.json_body == {**first.json_body, "prompt": "A lighthouse at dawn"}
    assert len(h.provider_calls("upload")) == 1  # the original's image, reused
    remix = await newest_job(h, h.admin_id)
    assert (remix.origin, remix.parent_job_id) == (JobOrigin.REMIX, job.id)
    assert remix.user_id == h.admin_id  # charged to whoever pressed

    listed = await h.answer(await h.command("video", "jobs", user_id=h.admin_id))
    assert f"remix of #{job.id}" in listed.embeds[0]["description"]
    audited = await h.fake.wait_for_message(h.general, lambda m: f"requested job #{remix.id}" in m.content)
    assert f"requested job #{remix.id} (remix of #{job.id})" in audited.content


async def test_continue_and_remix_outlive_a_restart(tmp_path: Path) -> None:
    """Pressed after a restart; and a modal opened before one, submitted after it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with FakeDiscord() as fake, Sandbox(api_key=API_KEY, task_seconds=1.0) as sandbox:
        fake.add_default_guild()
        sandbox.estimated_time.update(FAST)
        async with running_bot(tmp_path, fake=fake, database_url=url, sandbox=sandbox) as h:
            await h.storage.update_guild_settings(
                h.guild_id, allowance_credits=2000, max_active_jobs=5, confirm_above_credits=0
            )
            job, video = await delivered(h)
            await open_modal(h, "remix", job, video, h.member_id)  # opened, not submitted
        async with running_bot(tmp_path, fake=fake, database_url=url, sandbox=sandbox) as h:
            remixed = await submit(
                h, f"video:remix-modal:{job.id}", {"prompt": "Remixed after a restart"}, h.member_id,
                message_id=video.id,
            )  # fmt: skip
            assert remixed.embeds[0]["title"] == "Your video is queued"
            await open_modal(h, "continue", job, video, h.admin_id)
            continued = await submit(
                h, f"video:continue-modal:{job.id}", {"prompt": "Continued after a restart"}, h.admin_id,
                message_id=video.id,
            )  # fmt: skip
            assert continued.embeds[0]["title"] == "Your video is queued"
            prompts = [call.json_body["prompt"] for call in await generated(h, 3)]
            assert sorted(prompts[1:]) == ["Continued after a restart", "Remixed after a restart"]
            assert len(h.provider_calls("upload")) == 1  # the continuation's last frame
            continuation = await newest_job(h, h.admin_id)
            assert continuation.origin is JobOrigin.CONTINUE
            listed = await h.answer(await h.command("video", "jobs", user_id=h.admin_id))
            assert f"continued from #{job.id}" in listed.embeds[0]["description"]
            await check_ledger(h.storage)


async def test_the_modals_are_not_held_in_memory(harness: Harness) -> None:
    """discord.py never holds them: a submission is handled from its custom_id, exactly once."""
    h = harness
    job, video = await delivered(h)
    await open_modal(h, "remix", job, video, h.member_id)
    assert h.bot._connection._view_store._modals == {}
    await submit(h, f"video:remix-modal:{job.id}", {"prompt": "Once"}, h.member_id, message_id=video.id)
    await asyncio.sleep(0.5)
    assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 2


# -- Animate with Kling ----------------------------------------------------------------------------


async def test_animate_is_a_server_only_message_command(harness: Harness) -> None:
    (menu,) = [c for c in harness.fake.synced_commands(harness.guild_id) if c["type"] == 3]
    assert menu["name"] == "Animate with Kling"
    assert menu["contexts"] == [0]


async def test_animate_uploads_the_posted_image_and_replies_to_its_message(harness: Harness) -> None:
    h = harness
    source = h.fake.add_message(h.videos, h.admin_id, "my cat", attachments=[AttachmentSpec(PNG, "cat.png")])
    used = await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    opened = await used.wait_callback()
    assert opened.type == 9
    assert (opened.data["custom_id"], opened.data["title"]) == (
        f"video:animate-modal:{h.videos}:{source.id}:0",
        "Animate this image",
    )
    assert set(inputs(opened)) == {"prompt", "duration"}
    assert h.provider_calls() == []

    receipt = await submit(
        h, opened.data["custom_id"], {"prompt": "The cat yawns", "duration": "5"}, h.member_id
    )
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (upload,) = h.provider_calls("upload")
    job = await newest_job(h, h.member_id)
    assert job.origin is JobOrigin.ANIMATE
    assert upload_of(h, job.image_urls[0]) == PNG  # those exact bytes
    (generate,) = await generated(h, 1)
    assert upload.time < generate.time
    assert generate.json_body["imageUrls"] == job.image_urls
    assert generate.json_body["generationMode"] == "image_to_video"
    card = h.fake.messages[job.status_message_id or 0]
    assert card.payload["message_reference"]["message_id"] == str(source.id)
    assert card.allowed_mentions == {"parse": []}  # a reply that pings nobody, its author included
    await wait_state(h, job.id or 0, JobState.DELIVERED)


async def test_animate_works_without_the_message_content_intent(harness: Harness) -> None:
    """Discord empties other members' attachments in a fetched message; the menu's own copy is used."""
    h = harness
    h.fake.message_content_intent = False
    source = h.fake.add_message(h.videos, h.admin_id, attachments=[AttachmentSpec(PNG, "cat.png")])
    opened = await (
        await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    ).wait_callback()
    receipt = await submit(h, opened.data["custom_id"], {"prompt": "The cat blinks"}, h.member_id)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    assert upload_of(h, (await newest_job(h, h.member_id)).image_urls[0]) == PNG


async def test_an_image_deleted_before_the_submission_is_not_animated(harness: Harness) -> None:
    h = harness
    source = h.fake.add_message(h.videos, h.admin_id, attachments=[AttachmentSpec(PNG, "cat.png")])
    opened = await (
        await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    ).wait_callback()
    source.deleted = True
    answer = await submit(h, opened.data["custom_id"], {"prompt": "The cat yawns"}, h.member_id)
    assert "no longer there" in answer.content
    assert h.provider_calls() == []


@pytest.mark.parametrize(
    "attachments",
    [[], [AttachmentSpec(b"hello", "notes.txt")]],
    ids=["text only", "no image"],
)
async def test_animate_on_a_message_without_an_image_is_refused_at_once(
    harness: Harness, attachments: list[AttachmentSpec]
) -> None:
    h = harness
    source = h.fake.add_message(h.videos, h.admin_id, "just words", attachments=attachments)
    used = await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    answer = await used.wait_callback()
    assert (answer.type, answer.ephemeral) == (4, True)
    assert (
        answer.content
        == "That message has no JPEG, PNG or WebP image to animate; use it on a message with one."
    )
    assert h.provider_calls() == []


async def test_animate_on_a_pdf_named_png_is_refused_without_a_provider_call(harness: Harness) -> None:
    h = harness
    pdf = b"%PDF-1.7\n" + bytes(200)
    source = h.fake.add_message(h.videos, h.admin_id, attachments=[AttachmentSpec(pdf, "photo.png")])
    opened = await (
        await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    ).wait_callback()
    assert opened.type == 9  # a PNG by its name; its bytes are read once the member submits
    answer = await submit(h, opened.data["custom_id"], {"prompt": "Move"}, h.member_id)
    assert answer.ephemeral
    assert "not a JPEG, PNG or WebP image" in answer.content
    assert h.provider_calls() == []
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []
    assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 0


async def test_animate_outside_the_allowed_channels_is_refused_at_once(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, allowed_channel_ids=[h.videos])
    source = h.fake.add_message(h.general, h.admin_id, attachments=[AttachmentSpec(PNG, "cat.png")])
    used = await h.fake.send_message_command("Animate with Kling", message_id=source.id, user_id=h.member_id)
    answer = await used.wait_callback()
    assert (answer.type, answer.ephemeral) == (4, True)
    assert answer.content == f"Videos can't be made in this channel; try <#{h.videos}>."
    assert h.provider_calls() == []


async def test_an_animate_modal_outlives_a_restart_when_the_message_can_be_read(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with FakeDiscord() as fake, Sandbox(api_key=API_KEY, task_seconds=1.0) as sandbox:
        fake.add_default_guild()
        videos = fake.channel_ids["videos"]
        readable = fake.add_message(videos, fake.admin_id, attachments=[AttachmentSpec(PNG, "cat.png")])
        hidden = fake.add_message(videos, fake.admin_id, attachments=[AttachmentSpec(PNG, "dog.png")])
        async with running_bot(tmp_path, fake=fake, database_url=url, sandbox=sandbox, worker=False):
            opened = [
                await (
                    await fake.send_message_command(
                        "Animate with Kling", message_id=m.id, user_id=fake.member_id
                    )
                ).wait_callback()
                for m in (readable, hidden)
            ]
        async with running_bot(tmp_path, fake=fake, database_url=url, sandbox=sandbox, worker=False) as h:
            receipt = await submit(h, opened[0].data["custom_id"], {"prompt": "The cat yawns"}, h.member_id)
            assert receipt.embeds[0]["title"] == "Your video is queued"  # read again from the message
            assert upload_of(h, (await newest_job(h, h.member_id)).image_urls[0]) == PNG
            # Without the Message Content intent the fetched message is empty, and what the menu carried
            # died with the first process: one sentence, nothing made.
            fake.message_content_intent = False
            answer = await submit(h, opened[1].data["custom_id"], {"prompt": "The dog yawns"}, h.member_id)
            assert answer.content == (
                "I can no longer read that image; use Animate with Kling on the message again. Nothing was charged."
            )
            assert len(h.provider_calls("upload")) == 1
            assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 1


async def test_a_quoted_continuation_makes_its_start_frame_only_after_confirm(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    job, video = await delivered(h, model="kling-2.6")
    await h.storage.update_guild_settings(h.guild_id, confirm_above_credits=50)  # every request is quoted
    await open_modal(h, "continue", job, video, h.admin_id)
    quote = await submit(
        h, f"video:continue-modal:{job.id}", {"prompt": "The keeper walks out", "duration": ""}, h.admin_id,
        message_id=video.id,
    )  # fmt: skip
    assert any(c.startswith("quote:confirm:") for c in quote.custom_ids())  # a quote, not a receipt
    assert h.provider_calls("upload") == []  # no frame is made or uploaded for a quote
    assert await h.storage.list_jobs(h.guild_id, h.admin_id) == []  # nothing is held or queued yet
    receipt = await h.confirmed(quote, user_id=h.admin_id)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    assert len(h.provider_calls("upload")) == 1  # the start frame, once
    continuation = await newest_job(h, h.admin_id)
    assert (continuation.origin, continuation.parent_job_id) == (JobOrigin.CONTINUE, job.id)
    assert continuation.start_frame_url is not None
    await assert_same_picture(
        upload_of(h, continuation.start_frame_url),
        await last_frame_of(h.fake.attachment_bytes(video.attachments[0]), tmp_path),
    )
    # What the continuation came with survives the quote: the model note, on the receipt.
    assert "Kling 2.6 videos continue on Kling 3.0" in receipt.embeds[0]["description"]
