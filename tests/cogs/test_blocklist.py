"""The blocklist through the real bot: disguised prompts refused everywhere a prompt enters.

A refusal is one ephemeral sentence that names no term (a member must not learn the list by probing)
and leaves no trace: no download, no upload, no provider call, no public message, no job, no credits
held. The audit channel gets one line naming the member and the term, never the prompt. Admins add
prefix terms (``wolf*``) and cannot add a term that could never match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cogs.reviewing import BLOCKED_REASON
from storage import JobState
from tests.fakes.discord_api import AttachmentSpec, FakeMessage
from tests.harness import Harness, png, running_bot
from tests.storage.helpers import check_ledger

REFUSAL = "Your prompt contains something this server does not allow; rephrase it and try again."
DISGUISES = [
    "A f\u200box at dawn",  # zero-width space
    "A fo\u00adx at dawn",  # soft hyphen
    "A fοx at dawn",  # Greek omicron
    "A fох at dawn",  # Cyrillic о and х
    "A f.o.x at dawn",
    "A f-o-x at dawn",
    "A f o x at dawn",
    "A f0x at dawn",
    "A ＦＯＸ at dawn",
    "A fóx at dawn",
    "A FOX at dawn",
]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:
        h.fake.add_channel(h.guild_id, "audit")
        await admin(h, "audit", channel=audit_channel(h))
        yield h
        for message in h.fake.messages_in(audit_channel(h), include_ephemeral=False):
            assert message.allowed_mentions == {"parse": []}, message.content


def audit_channel(h: Harness) -> int:
    return next(c.id for c in h.fake.channels.values() if c.name == "audit")


def audit_lines(h: Harness) -> list[str]:
    return [m.content for m in h.fake.messages_in(audit_channel(h), include_ephemeral=False)][1:]


async def admin(h: Harness, subcommand: str, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", subcommand, user_id=h.admin_id, **options)
    )
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def video(h: Harness, prompt: str, **options: Any) -> FakeMessage:
    options = {"model": "kling-2.6", **options}
    answer: FakeMessage = await h.answer(await h.command("video", "text", prompt=prompt, **options))
    return answer


async def assert_nothing_happened(h: Harness, user_id: int | None = None) -> None:
    user_id = user_id or h.member_id
    assert h.provider_calls() == []
    assert not [c for c in h.fake.calls if c.route.startswith("CDN")]  # nothing downloaded either
    assert h.public_messages() == []
    assert await h.storage.list_jobs(h.guild_id, user_id) == []
    balance = await h.storage.balance(h.guild_id, user_id)
    assert (balance.reserved, balance.available) == (0, balance.allowance_total)
    await check_ledger(h.storage)


def blocked_line(h: Harness, term: str, user_id: int | None = None) -> str:
    return (
        f"⛔ Refused a prompt from <@{user_id or h.member_id}> in <#{h.videos}>: "
        f"it contains the blocklisted term “{term}”."
    )


async def test_disguised_prompts_are_refused_in_one_sentence_that_names_no_term(harness: Harness) -> None:
    h = harness
    await admin(h, "blocklist", action="add", term="fox")
    for prompt in DISGUISES:
        refusal = await video(h, prompt)
        assert refusal.ephemeral
        assert (refusal.content, refusal.embeds) == (REFUSAL, []), prompt
        assert refusal.allowed_mentions == {"parse": []}
    await assert_nothing_happened(h)
    # One line per refusal: the member and the term, never the prompt.
    assert audit_lines(h)[1:] == [blocked_line(h, "fox")] * len(DISGUISES)
    assert not any("dawn" in line for line in audit_lines(h))


async def test_harmless_prompts_that_share_letters_still_go_through(harness: Harness) -> None:
    h = harness
    await admin(h, "blocklist", action="add", term="fox")
    await h.storage.update_guild_settings(h.guild_id, max_active_jobs=3)
    for prompt in ("A box of toys", "Firefox on an old laptop", "A herd of oxen"):
        receipt = await video(h, prompt)
        assert receipt.embeds[0]["title"] == "Your video is queued", prompt
    assert len(await h.storage.list_jobs(h.guild_id, h.member_id)) == 3


async def test_a_disguised_image_request_is_refused_before_any_download_or_upload(harness: Harness) -> None:
    h = harness
    await admin(h, "blocklist", action="add", term="gore")
    interaction = await h.command(
        "video", "image", prompt="It turns to g0r3", attachments={"image": AttachmentSpec(png(), "a.png")}
    )
    refusal = await h.answer(interaction)
    assert (refusal.ephemeral, refusal.content) == (True, REFUSAL)
    await assert_nothing_happened(h)
    assert audit_lines(h)[-1] == blocked_line(h, "gore")


async def test_regenerate_is_checked_against_the_list_as_it_is_now(harness: Harness) -> None:
    h = harness
    receipt = await video(h, "A red fox in the snow")
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    await admin(h, "blocklist", action="add", term="F0X")
    # Regenerate on the posted video (a message the fake never saw: the button outlives restarts).
    pressed = await h.fake.send_component(
        f"video:regen:{job.id}", message_id=1, user_id=h.admin_id, channel_id=h.videos
    )
    refusal = await h.answer(pressed)
    assert (refusal.ephemeral, refusal.content) == (True, REFUSAL)
    assert await h.storage.list_jobs(h.guild_id, h.admin_id) == []
    balance = await h.storage.balance(h.guild_id, h.admin_id)
    assert (balance.reserved, balance.available) == (0, balance.allowance_total)
    assert h.provider_calls() == []
    assert audit_lines(h)[-1] == blocked_line(h, "F0X", h.admin_id)


async def test_a_prefix_term_is_added_listed_and_enforced(harness: Harness) -> None:
    h = harness
    added = await admin(h, "blocklist", action="add", term="wolf*")
    assert added.content == (
        "Added “wolf\\*”: prompts containing it are refused from now on. The blocklist has 1 term."
    )
    listed = await admin(h, "blocklist", action="list")
    assert listed.content == "Blocklist (1): “wolf\\*”"
    settings_embed = (await admin(h, "settings")).embeds[0]
    assert any(f["name"] == "Blocklist (1)" and f["value"] == "“wolf\\*”" for f in settings_embed["fields"])
    for prompt in ("A wolfpack at night", "The W0LFHOUND sleeps", "a w-o-l-f-p-a-c-k"):
        assert (await video(h, prompt)).content == REFUSAL, prompt
    await assert_nothing_happened(h)
    assert audit_lines(h)[-3:] == [blocked_line(h, "wolf\\*")] * 3  # markdown-escaped, as everywhere
    assert (await video(h, "Wolves at night")).embeds[0]["title"] == "Your video is queued"


async def test_a_term_that_normalises_to_nothing_is_refused(harness: Harness) -> None:
    h = harness
    for term in ("\u200b\u00ad", "**", "!!!", "\u0301"):
        refused = await admin(h, "blocklist", action="add", term=term)
        assert refused.content.endswith("has no letters or digits, so it could never match a prompt."), term
    assert (await admin(h, "blocklist", action="list")).content == "Blocklist (0): Empty"
    assert (await h.storage.get_guild_settings(h.guild_id)).blocklist_terms == []


async def test_a_disguise_of_a_listed_term_is_the_same_term(harness: Harness) -> None:
    h = harness
    await admin(h, "blocklist", action="add", term="Fox")
    again = await admin(h, "blocklist", action="add", term="F-0-X")
    assert again.content == "“F-0-X” is already on the blocklist."
    removed = await admin(h, "blocklist", action="remove", term="ｆｏｘ")
    assert removed.content == "Removed “ｆｏｘ”. The blocklist has 0 terms."
    assert (await h.storage.get_guild_settings(h.guild_id)).blocklist_terms == []


# -- review: approval re-checks the list ---------------------------------------------------------------


async def test_approving_a_request_the_list_now_refuses_rejects_it_and_refunds(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
    receipt = await video(h, "A red fox in the snow")
    assert receipt.embeds[0]["title"] == "Sent for review"
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.review_message_id is not None
    await admin(h, "blocklist", action="add", term="fox")

    pressed = await h.fake.send_component(
        f"review:approve:{job.id}", message_id=job.review_message_id, user_id=h.admin_id
    )
    assert (await pressed.wait_callback()).type == 6
    told = await pressed.wait_followup()
    assert told.ephemeral
    assert told.content == (
        "Not approved: the prompt now contains the blocklisted term “fox”, so I rejected the request "
        "and gave the member their 55 credits back."
    )
    rejected = await h.storage.get_job(job.id or 0)
    assert rejected is not None
    assert (rejected.state, rejected.reviewed_by, rejected.error) == (
        JobState.REJECTED,
        h.admin_id,
        BLOCKED_REASON,
    )
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, balance.allowance_total)
    await check_ledger(h.storage)
    assert h.provider_calls() == []  # text to video: nothing was uploaded, nothing generated

    notice = await h.fake.wait_for_message(h.videos, lambda m: "turned down" in m.content)
    assert notice.content == (
        f"<@{h.member_id}> a moderator turned down your video request (“{BLOCKED_REASON}”). "
        "Your 55 credits are back."
    )
    assert "fox" not in notice.content
    assert audit_lines(h)[-1] == (
        f"⛔ Job #{job.id} of <@{h.member_id}> was rejected, not approved, when <@{h.admin_id}> pressed "
        "Approve: its prompt contains the blocklisted term “fox”. 55 credits went back to them."
    )


async def test_approving_a_request_the_list_still_allows_queues_it(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
    await video(h, "A herd of oxen")
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    await admin(h, "blocklist", action="add", term="fox")
    pressed = await h.fake.send_component(
        f"review:approve:{job.id}", message_id=job.review_message_id or 0, user_id=h.admin_id
    )
    assert (await pressed.wait_callback()).type == 6
    await h.fake.wait_for_message(audit_channel(h), lambda m: "approved job" in m.content)
    approved = await h.storage.get_job(job.id or 0)
    assert approved is not None
    assert approved.state is JobState.QUEUED
    assert pressed.followups == []
