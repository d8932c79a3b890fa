"""``/kling-admin`` through the real bot: every subcommand by an admin, and refused for a plain member.

The fake Discord does not enforce ``default_permissions`` (a server's admins can override it anyway), so
a member's refusal here proves the run-time check. Effects are checked where members feel them: through
``/video`` and ``/credits``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from cogs.admin import ADMIN_REFUSAL, Admin
from cogs.common import UserFacingError
from storage import GuildSettings
from storage.models import LedgerEntry, table
from tests.fakes.discord_api import FakeMessage, Permission
from tests.harness import Harness, running_bot


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:
        yield h


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


async def admin(h: Harness, subcommand: str, *, user_id: int | None = None, **options: Any) -> FakeMessage:
    """Run ``/kling-admin <subcommand>`` as the admin; the private answer, checked for safety."""
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", subcommand, user_id=user_id or h.admin_id, **options)
    )
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def video(h: Harness, *, user_id: int | None = None, **options: Any) -> FakeMessage:
    options = {"prompt": "A calm lake at dawn", "model": "kling-2.6", **options}
    answer: FakeMessage = await h.answer(await h.command("video", "text", user_id=user_id, **options))
    assert answer.allowed_mentions == {"parse": []}
    return answer


# -- the command tree ------------------------------------------------------------------------------


async def test_the_group_is_synced_with_the_documented_names_and_permissions(harness: Harness) -> None:
    h = harness
    (group,) = [c for c in h.fake.synced_commands(h.guild_id) if c["name"] == "kling-admin"]
    assert int(group["default_member_permissions"]) == int(Permission.MANAGE_GUILD)
    assert (group["contexts"], group["dm_permission"]) == ([0], False)  # servers only
    subcommands = {o["name"]: o for o in group["options"]}
    expected = {
        "channel": ["channel", "enabled"],
        "review": ["channel"],
        "quota": ["credits", "period", "role"],
        "grant": ["member", "credits"],
        "blocklist": ["action", "term"],
        "audit": ["channel"],
        "budget": ["credits", "period"],
        "directory": ["enabled"],
        "settings": [],
        "confirm": ["credits"],
        "retention": ["days"],
        "forget": ["member"],
        "usage": ["period"],
        "resume": [],
        "alert": ["credits"],
        "jobs": [],
        "ban": ["member", "reason"],
        "unban": ["member"],
    }
    assert {
        name: [o["name"] for o in sub.get("options", [])] for name, sub in subcommands.items()
    } == expected
    for sub in subcommands.values():
        assert sub["description"]
        for option in sub.get("options", []):
            assert option["description"], option["name"]
    quota = {o["name"]: o for o in subcommands["quota"]["options"]}
    assert [c["value"] for c in quota["period"]["choices"]] == ["daily", "weekly", "monthly"]
    assert not quota["role"].get("required")
    budget = {o["name"]: o for o in subcommands["budget"]["options"]}
    assert [c["value"] for c in budget["period"]["choices"]] == ["daily", "monthly"]
    assert "0 removes the cap" in budget["credits"]["description"]
    blocklist = {o["name"]: o for o in subcommands["blocklist"]["options"]}
    assert [c["value"] for c in blocklist["action"]["choices"]] == ["add", "remove", "list"]


def every_subcommand(h: Harness) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("channel", {"channel": h.general, "enabled": True}),
        ("review", {"channel": h.general}),
        ("quota", {"credits": 10, "period": "daily"}),
        ("grant", {"member": h.member_id, "credits": 1000}),
        ("blocklist", {"action": "add", "term": "lake"}),
        ("blocklist", {"action": "list"}),
        ("audit", {"channel": h.general}),
        ("budget", {"credits": 1, "period": "daily"}),
        ("directory", {"enabled": True}),
        ("settings", {}),
        ("confirm", {"credits": 0}),
        ("retention", {"days": 0}),
        ("forget", {"member": h.member_id}),
        ("usage", {}),
        ("resume", {}),
        ("alert", {"credits": 100}),
        ("jobs", {}),
        ("ban", {"member": h.member_id, "reason": "spam"}),
        ("unban", {"member": h.member_id}),
    ]


async def test_every_subcommand_is_refused_to_a_member_without_manage_server(harness: Harness) -> None:
    h = harness
    moderator = h.fake.add_member(h.guild_id, name="mod", permissions=Permission.MANAGE_MESSAGES).user_id
    before = (await h.storage.get_guild_settings(h.guild_id)).model_dump(exclude={"updated_at"})
    for user_id in (h.member_id, moderator):
        for subcommand, options in every_subcommand(h):
            interaction = await h.command("kling-admin", subcommand, user_id=user_id, **options)
            refusal = await interaction.wait_callback()
            assert refusal.type == 4, subcommand  # one sentence at once, nothing deferred
            assert refusal.ephemeral
            assert refusal.content == ADMIN_REFUSAL
            assert refusal.embeds == []
            assert refusal.data["allowed_mentions"] == {"parse": []}
    after = (await h.storage.get_guild_settings(h.guild_id)).model_dump(exclude={"updated_at"})
    assert after == before
    assert (await h.storage.balance(h.guild_id, h.member_id)).bonus == 0
    assert h.public_messages(h.general) == []  # not even an audit line


async def test_administrator_alone_is_enough(harness: Harness) -> None:
    h = harness
    owner_like = h.fake.add_member(h.guild_id, name="boss", permissions=Permission.ADMINISTRATOR).user_id
    answer = await admin(h, "directory", user_id=owner_like, enabled=True)
    assert answer.content.startswith("The Prompt Directory discount is on")


# -- channel ---------------------------------------------------------------------------------------


async def test_channel_allows_and_stops_generation(harness: Harness) -> None:
    h = harness
    refused = await admin(h, "channel", channel=h.general, enabled=False)
    assert "No channel is singled out yet" in refused.content

    answer = await admin(h, "channel", channel=h.general, enabled=True)
    assert answer.content == f"Opened <#{h.general}>. Videos can be made only in <#{h.general}>."
    assert (await h.storage.get_guild_settings(h.guild_id)).allowed_channel_ids == [h.general]
    refusal = await video(h)  # in #videos
    assert refusal.content == f"Videos can't be made in this channel; try <#{h.general}>."
    receipt = await h.answer(
        await h.command("video", "text", channel_id=h.general, prompt="A calm lake", model="kling-2.6")
    )
    assert receipt.embeds[0]["title"] == "Your video is queued"

    again = await admin(h, "channel", channel=h.general, enabled=True)
    assert again.content.startswith(f"<#{h.general}> is already open")
    closed = await admin(h, "channel", channel=h.general, enabled=False)
    assert closed.content == f"Closed <#{h.general}>. Videos can be made in every channel."
    assert (await h.storage.get_guild_settings(h.guild_id)).allowed_channel_ids == []
    assert (await video(h)).embeds[0]["title"] == "Your video is queued"


# -- review ----------------------------------------------------------------------------------------


async def test_review_turns_on_and_off(harness: Harness) -> None:
    h = harness
    on = await admin(h, "review", channel=h.general)
    assert on.content.startswith(f"Review is on: every new request waits in <#{h.general}>")
    assert (await h.storage.get_guild_settings(h.guild_id)).review_channel_id == h.general
    receipt = await video(h)
    assert receipt.embeds[0]["title"] == "Sent for review"
    (card,) = h.public_messages(h.general)
    assert card.custom_ids()[0].startswith("review:approve:")

    off = await admin(h, "review")
    assert off.content == (
        "Review is off: new requests go straight to the queue. 1 request already waiting keep their cards in "
        f"<#{h.general}>: decide them there."
    )
    assert (await h.storage.get_guild_settings(h.guild_id)).review_channel_id is None
    assert (await video(h)).embeds[0]["title"] == "Your video is queued"


async def test_review_refuses_a_channel_the_bot_cannot_post_in(harness: Harness) -> None:
    h = harness
    h.fake.set_channel_overwrite(
        h.general, h.fake.role_ids["bot"], deny=Permission.SEND_MESSAGES | Permission.EMBED_LINKS
    )
    answer = await admin(h, "review", channel=h.general)
    assert answer.content == (
        f"I can't post in <#{h.general}>: I need the Send Messages, Embed Links permissions there. "
        "Grant them, or pick another channel."
    )
    assert (await h.storage.get_guild_settings(h.guild_id)).review_channel_id is None


# -- quota and grant ---------------------------------------------------------------------------------


async def test_quota_sets_the_allowance_for_everyone(harness: Harness) -> None:
    h = harness
    answer = await admin(h, "quota", credits=100, period="daily")
    assert answer.content.startswith("Every member now gets 100 credits a day.")
    assert "Every allowance now refills daily" in answer.content
    settings = await h.storage.get_guild_settings(h.guild_id)
    assert (settings.allowance_credits, settings.allowance_period) == (100, "daily")
    credits = await h.answer(await h.command("credits"))
    assert field(credits.embeds[0], "Allowance left") == "100 of 100 (daily)"
    receipt = await video(h, model="kling-3.0")  # 100 credits: fits exactly
    assert receipt.embeds[0]["title"] == "Your video is queued"


async def test_quota_by_role_gives_its_members_the_larger_allowance(harness: Harness) -> None:
    h = harness
    patrons = h.fake.add_role(h.guild_id, "Patrons")
    patron = h.fake.add_member(h.guild_id, name="patron", roles=[patrons]).user_id
    answer = await admin(h, "quota", credits=800, period="weekly", role=patrons.id)
    assert answer.content.startswith(f"Members with <@&{patrons.id}> now get 800 credits a week.")
    assert "largest allowance that applies" in answer.content
    assert (await h.storage.get_guild_settings(h.guild_id)).role_allowances == {str(patrons.id): 800}

    theirs = await h.answer(await h.command("credits", user_id=patron))
    assert field(theirs.embeds[0], "Allowance left") == "800 of 800 (weekly)"
    mine = await h.answer(await h.command("credits"))
    assert field(mine.embeds[0], "Allowance left") == "300 of 300 (weekly)"
    # A smaller role allowance never lowers anyone below the server's.
    await admin(h, "quota", credits=50, period="weekly", role=patrons.id)
    assert field(
        (await h.answer(await h.command("credits", user_id=patron))).embeds[0], "Allowance left"
    ) == (
        "800 of 800 (weekly)"  # lowered allowances apply at the next refill
    )
    removed = await admin(h, "quota", credits=0, period="weekly", role=patrons.id)
    assert removed.content.startswith(f"<@&{patrons.id}> no longer has an allowance of its own.")
    assert (await h.storage.get_guild_settings(h.guild_id)).role_allowances == {}


async def test_grant_adds_and_takes_bonus_credits_in_the_ledger(harness: Harness) -> None:
    h = harness
    given = await admin(h, "grant", member=h.member_id, credits=50)
    assert given.content == f"Gave <@{h.member_id}> 50 bonus credits. They can spend 350 credits now."
    credits = await h.answer(await h.command("credits"))
    assert field(credits.embeds[0], "Bonus credits") == "50"

    taken = await admin(h, "grant", member=h.member_id, credits=-80)
    assert taken.content == (
        f"Took 50 bonus credits from <@{h.member_id}> (all they had). They can spend 300 credits now."
    )
    nothing = await admin(h, "grant", member=h.member_id, credits=-5)
    assert "has no bonus credits, so nothing was taken" in nothing.content
    zero = await admin(h, "grant", member=h.member_id, credits=0)
    assert zero.content == "Give a number of credits other than 0."

    ledger = table(LedgerEntry)
    async with h.storage.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(ledger.c.amount, ledger.c.actor_id, ledger.c.kind)
                .where(ledger.c.user_id == h.member_id, ledger.c.kind == "grant")
                .order_by(ledger.c.id)
            )
        ).all()
    assert [(r.amount, r.actor_id) for r in rows] == [(50, h.admin_id), (-50, h.admin_id), (0, h.admin_id)]


# -- blocklist ----------------------------------------------------------------------------------------


async def test_blocklist_add_list_remove_through_video(harness: Harness) -> None:
    h = harness
    empty = await admin(h, "blocklist", action="list")
    assert empty.content == "Blocklist (0): Empty"
    added = await admin(h, "blocklist", action="add", term="Gore")
    assert added.content.startswith("Added “Gore”: prompts containing it are refused from now on.")
    refusal = await video(h, prompt="A GORE festival at night")
    assert refusal.content == (
        "Your prompt contains something this server does not allow; rephrase it and try again."
    )
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []

    duplicate = await admin(h, "blocklist", action="add", term="gore")
    assert duplicate.content == "“gore” is already on the blocklist."
    nonsense = await admin(h, "blocklist", action="add", term="!!!")
    assert nonsense.content == "“!!!” has no letters or digits, so it could never match a prompt."
    missing = await admin(h, "blocklist", action="add")
    assert missing.content == "Say which term to add: fill in `term`."
    await admin(h, "blocklist", action="add", term="@everyone blood bath")
    listed = await admin(h, "blocklist", action="list")
    assert listed.content == "Blocklist (2): “Gore”, “@everyone blood bath”"

    removed = await admin(h, "blocklist", action="remove", term="gore")
    assert removed.content == "Removed “gore”. The blocklist has 1 term."
    assert (await h.storage.get_guild_settings(h.guild_id)).blocklist_terms == ["@everyone blood bath"]
    absent = await admin(h, "blocklist", action="remove", term="gore")
    assert absent.content == "“gore” is not on the blocklist."
    assert (await video(h, prompt="A GORE festival at night")).embeds[0]["title"] == "Your video is queued"


# -- budget and directory -----------------------------------------------------------------------------


async def test_budget_caps_the_whole_server_until_removed(harness: Harness) -> None:
    h = harness
    answer = await admin(h, "budget", credits=100, period="monthly")
    assert answer.content.startswith(
        "Server budget: 100 credits a month: 0 credits spent this month, starts over <t:"
    )
    assert (await video(h)).embeds[0]["title"] == "Your video is queued"  # 55 of 100
    refusal = await video(h, user_id=h.admin_id)  # another 55 would pass the cap
    assert refusal.content.startswith("This server has used its video budget for now (55 of 100 credits)")
    assert "renews <t:" in refusal.content
    assert await h.storage.list_jobs(h.guild_id, h.admin_id) == []
    assert (await h.storage.balance(h.guild_id, h.admin_id)).available == 300

    full = await admin(h, "budget", credits=50, period="monthly")
    assert full.content.endswith("New requests are refused until then.")
    removed = await admin(h, "budget", credits=0, period="monthly")
    assert removed.content.startswith("The server budget has no cap now")
    assert (await h.storage.get_guild_settings(h.guild_id)).budget_credits is None
    assert (await video(h, user_id=h.admin_id)).embeds[0]["title"] == "Your video is queued"


async def test_directory_discount_is_announced_on_receipts(harness: Harness) -> None:
    h = harness
    on = await admin(h, "directory", enabled=True)
    assert "10 credits less" in on.content
    assert "public Prompt Directory" in on.content
    receipt = await h.confirmed(await video(h))  # every request is quoted first while it is on
    assert "Prompt Directory" in receipt.embeds[0]["description"]
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.directory_optin is True
    off = await admin(h, "directory", enabled=False)
    assert off.content.startswith("The Prompt Directory discount is off")
    assert (await h.storage.get_guild_settings(h.guild_id)).directory_discount is False


# -- audit and settings ---------------------------------------------------------------------------------


async def test_audit_channel_is_set_moved_and_turned_off(harness: Harness) -> None:
    h = harness
    answer = await admin(h, "audit", channel=h.general)
    assert answer.content.startswith(f"The audit log goes to <#{h.general}>")
    hello = await h.fake.wait_for_message(h.general, lambda m: "audit log" in m.content)
    assert hello.content == f"📋 <@{h.admin_id}> made this channel the video bot's audit log."
    assert hello.allowed_mentions == {"parse": []}
    moved = await admin(h, "audit", channel=h.videos)
    assert moved.content.startswith(f"The audit log goes to <#{h.videos}>")
    await h.fake.wait_for_message(h.general, lambda m: f"moved the audit log to <#{h.videos}>" in m.content)
    off = await admin(h, "audit")
    assert off.content == "The audit log is off."
    await h.fake.wait_for_message(h.videos, lambda m: "turned the audit log off" in m.content)
    assert (await h.storage.get_guild_settings(h.guild_id)).audit_channel_id is None


async def test_settings_shows_everything_with_spend_and_jobs_in_flight(harness: Harness) -> None:
    h = harness
    patrons = h.fake.add_role(h.guild_id, "Patrons")
    await admin(h, "channel", channel=h.videos, enabled=True)
    await admin(h, "review", channel=h.general)
    await admin(h, "audit", channel=h.general)
    await admin(h, "quota", credits=200, period="daily")
    await admin(h, "quota", credits=900, period="daily", role=patrons.id)
    await admin(h, "blocklist", action="add", term="gore")
    await admin(h, "budget", credits=5000, period="monthly")
    await admin(h, "directory", enabled=True)
    await h.confirmed(await video(h))
    await admin(h, "retention", days=30)

    answer = await admin(h, "settings")
    (embed,) = answer.embeds
    assert embed["title"] == "Video bot settings"
    assert field(embed, "Channels") == f"<#{h.videos}>"
    assert field(embed, "Review") == f"<#{h.general}>"
    assert field(embed, "Audit log") == f"<#{h.general}>"
    assert field(embed, "Prompt Directory") == "On (10 credits off, published)"
    assert field(embed, "Allowance").startswith(
        f"200 credits a day per member\n<@&{patrons.id}>: 900 credits"
    )
    assert field(embed, "Server budget").startswith("5,000 credits a month: 55 credits spent this month")
    assert field(embed, "Jobs in flight") == "1: 1 waiting for review"
    assert field(embed, "Blocklist (1)") == "“gore”"
    assert field(embed, "Per member") == "2 at a time · default model Kling 3.0"
    assert field(embed, "Price confirmation") == "Every request (the Prompt Directory discount is on)"
    assert field(embed, "Retention") == "30 days after a video ends"


async def test_settings_of_a_new_server_are_the_defaults(harness: Harness) -> None:
    h = harness
    (embed,) = (await admin(h, "settings")).embeds
    defaults = GuildSettings(guild_id=1)
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Channels": "Every channel",
        "Review": "Off",
        "Audit log": "Off",
        "Prompt Directory": "Off",
        "Allowance": f"{defaults.allowance_credits} credits a week per member",
        "Server budget": "No cap (0 credits spent this month)",
        "Jobs in flight": "None",
        "Per member": "2 at a time · default model Kling 3.0",
        "Price confirmation": f"Above {defaults.confirm_above_credits} credits",
        "Retention": f"{defaults.retention_days} days after a video ends",
        "Blocklist (0)": "Empty",
        "Video line": "Video generation is running. UlazAI has not reported the account's balance yet "
        "(Kling 2.6 videos carry it).",
        "Low-balance alert": "Off",
        "Banned (0)": "None",
    }


async def test_a_value_storage_refuses_becomes_one_sentence(harness: Harness) -> None:
    h = harness
    cog = cast(Admin, h.bot.get_cog("Admin"))  # discord.py loads the extension as its own module copy
    with pytest.raises(UserFacingError) as refused:
        await cog.update(h.guild_id, max_active_jobs=0)
    assert refused.value.message == "That can't be set: max active jobs must be 1 or more."
