"""``/video forget``, ``/kling-admin forget`` and retention through the real bot.

After forgetting, a member's prompts are gone from the database itself: on SQLite the test reads the
database file and its WAL as bytes; on PostgreSQL it reads every column of every table as text.
Amounts and states stay, so the ledger still sums to the balance; another member's words stay too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from generation import worker
from storage import ERASED_PROMPT, Job, JobState, Storage
from storage.models import metadata, table
from tests.fakes.discord_api import FakeDiscord, FakeMessage
from tests.harness import Harness, running_bot
from tests.postgres import create_database, drop_database
from tests.storage.helpers import check_ledger

FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}
_databases = itertools.count()


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


async def ask(h: Harness, prompt: str, *, user_id: int | None = None, **options: Any) -> FakeMessage:
    options = {"model": "kling-2.6", **options}
    answer: FakeMessage = await h.answer(
        await h.command("video", "text", prompt=prompt, user_id=user_id, **options)
    )
    assert answer.embeds, answer.content
    return answer


async def wait_for(what: str, check: Any, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def all_in(h: Harness, user_id: int, state: JobState, count: int) -> bool:
    jobs = await h.storage.list_jobs(h.guild_id, user_id)
    return len(jobs) == count and all(job.state is state for job in jobs)


async def redrawn(h: Harness, card: FakeMessage) -> None:
    def erased() -> bool | None:
        return True if card.embeds[0]["description"] == ERASED_PROMPT else None

    await h.fake._wait(erased, 5, f"the card {card.id} to be redrawn with its prompt erased")


@dataclass
class Forgotten:
    """What the member wrote, what someone else wrote, and the member's jobs after forgetting."""

    prompts: list[str]
    others: list[str]
    jobs: list[Job]


async def forget_after_two_delivered_and_one_queued(
    tmp_path: Path, url: str, inspect: Callable[[Forgotten], Awaitable[None]]
) -> None:
    """Two delivered videos, one queued, one waiting for review and one open quote; then /video forget,
    and ``inspect`` the database while the bot still runs (a SQLite file closed by its last connection
    is checkpointed anyway: only a running bot's files prove the bot's own checkpoint)."""
    prompts = [
        "zq-delivered-first: a heron over the marsh",
        "zq-delivered-second: a heron in the reeds",
        "zq-queued: a heron at dusk",
        "zq-in-review: a heron in the rain",
        "zq-quoted: a heron in the snow",
    ]
    others = ["xk-someone-else: a kingfisher diving"]
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        async with running_bot(tmp_path / "a", fake=fake, database_url=url) as h:
            h.sandbox.estimated_time.update(FAST)
            await h.storage.update_guild_settings(h.guild_id, max_active_jobs=5)
            for prompt in prompts[:2]:
                await ask(h, prompt)
            await ask(h, others[0], user_id=h.admin_id)
            await wait_for("two delivered", lambda: all_in(h, h.member_id, JobState.DELIVERED, 2))
            await wait_for("one delivered", lambda: all_in(h, h.admin_id, JobState.DELIVERED, 1))
        async with running_bot(tmp_path / "b", fake=fake, database_url=url, worker=False) as h:
            await ask(h, prompts[2])  # queued: no worker now
            await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
            await ask(h, prompts[3])
            await h.storage.update_guild_settings(h.guild_id, confirm_above_credits=50)
            quote = await ask(h, prompts[4])
            assert quote.embeds[0]["title"] == "Confirm your video"
            balance = await h.storage.balance(h.guild_id, h.member_id)
            assert (balance.reserved, balance.available) == (110, 80)

            keep = await h.answer(await h.command("video", "forget"))
            assert keep.content.startswith("This erases, for good, what you wrote and linked here")
            assert keep.allowed_mentions == {"parse": []}
            stranger = await h.press(
                keep, "privacy:keep:", user_id=h.fake.add_member(h.guild_id, name="x").id
            )
            assert "Only that member, or an admin" in ((await stranger.wait_callback()).content or "")
            kept = await h.press(keep, "privacy:keep:")
            assert (await kept.wait_callback()).type == 6
            await h.fake.wait_for_call(lambda c: c.method == "PATCH" and kept.token in c.path)
            assert keep.content == "Nothing was erased."
            assert len([j for j in await h.storage.list_jobs(h.guild_id, h.member_id) if j.erased_at]) == 0

            ask_again = await h.answer(await h.command("video", "forget"))
            assert [c["label"] for row in ask_again.components for c in row["components"]] == [
                "Forget everything",
                "Keep",
            ]
            pressed = await h.press(ask_again, "privacy:forget:")
            assert (await pressed.wait_callback()).type == 6
            await h.fake.wait_for_call(lambda c: c.method == "PATCH" and pressed.token in c.path)
            assert ask_again.content.splitlines() == [
                "Erased the prompts, image links and video links of 4 videos.",
                "2 requests that had not started were cancelled; 110 credits are back.",
                "1 price quote deleted.",
                "Your credits and their history stay, so the numbers still add up.",
            ]
            jobs = await h.storage.list_jobs(h.guild_id, h.member_id)
            assert sorted(job.state for job in jobs) == sorted(
                [JobState.DELIVERED, JobState.DELIVERED, JobState.CANCELLED, JobState.CANCELLED]
            )
            balance = await h.storage.balance(h.guild_id, h.member_id)
            assert (balance.reserved, balance.available) == (0, 190)
            await check_ledger(h.storage)

            # Discord's copies: every status card, and the review card, now read "[erased]".
            cards = [h.fake.messages[job.status_message_id or 0] for job in jobs]
            review_card = h.fake.messages[next(j.review_message_id for j in jobs if j.review_message_id) or 0]
            for card in [*cards, review_card]:
                await redrawn(h, card)
            listing = await h.answer(await h.command("video", "jobs"))
            assert listing.embeds[0]["description"].count("-# [erased]") == 4
            (theirs,) = await h.storage.list_jobs(h.guild_id, h.admin_id)
            assert theirs.prompt == others[0]
            assert theirs.erased_at is None
            audit_free = [m.content for m in h.fake.messages.values() if any(p in m.content for p in prompts)]
            assert audit_free == []
            await inspect(Forgotten(prompts=prompts, others=others, jobs=jobs))


async def test_forget_leaves_no_byte_of_the_prompts_in_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    wal = path.with_name(path.name + "-wal")

    async def inspect(forgotten: Forgotten) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        data += await asyncio.to_thread(wal.read_bytes)  # the bot is running: the WAL is there
        for prompt in forgotten.prompts:
            assert prompt.encode() not in data, prompt
            assert prompt.split(":")[0].encode() not in data, prompt  # not even its first words
        for prompt in forgotten.others:
            assert prompt.encode() in data  # the same reading finds what was not erased

    await forget_after_two_delivered_and_one_queued(tmp_path, f"sqlite+aiosqlite:///{path}", inspect)


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    name = f"kling_forget_{next(_databases)}"
    url = create_database(postgres_server, name)
    yield url
    drop_database(postgres_server, name)


@pytest.mark.postgres
async def test_forget_leaves_no_prompt_in_any_postgresql_column(
    tmp_path: Path, postgres_database: str
) -> None:
    async def inspect(forgotten: Forgotten) -> None:
        found: list[str] = []
        async with Storage(postgres_database) as storage, storage.engine.connect() as conn:
            for model_table in metadata.sorted_tables:
                columns = [sa.cast(column, sa.Text).label(column.name) for column in model_table.columns]
                for row in (await conn.execute(sa.select(*columns))).mappings():
                    found += [f"{model_table.name}.{name}: {value}" for name, value in row.items() if value]
        for prompt in forgotten.prompts:
            assert not [cell for cell in found if prompt.split(":")[0] in cell], prompt
        for prompt in forgotten.others:
            assert [cell for cell in found if prompt in cell]

    await forget_after_two_delivered_and_one_queued(tmp_path, postgres_database, inspect)


async def test_an_admin_forgets_a_member_who_asked(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
        await ask(h, "qq-a secret wish")
        question = await h.answer(
            await h.command("kling-admin", "forget", user_id=h.admin_id, member=h.member_id)
        )
        assert question.content.startswith(
            f"This erases, for good, what <@{h.member_id}> wrote and linked here"
        )
        assert question.allowed_mentions == {"parse": []}
        pressed = await h.press(question, "privacy:forget:", user_id=h.admin_id)
        assert (await pressed.wait_callback()).type == 6
        await h.fake.wait_for_call(lambda c: c.method == "PATCH" and pressed.token in c.path)
        assert question.content.startswith("Erased the prompts, image links and video links of 1 video.")
        assert question.content.endswith("Their credits and their history stay, so the numbers still add up.")
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        assert (job.prompt, job.state) == (ERASED_PROMPT, JobState.CANCELLED)
        line = await h.fake.wait_for_message(h.general, lambda m: m.content.startswith("🧹"))
        assert line.content == (
            f"🧹 <@{h.admin_id}> erased the prompts and links of <@{h.member_id}>: 1 video erased, "
            "1 cancelled (55 credits refunded)."
        )
        regenerate = await h.fake.send_component(
            f"video:regen:{job.id}", message_id=2, channel_id=h.videos, user_id=h.member_id
        )
        assert "no longer have the details" in (await h.answer(regenerate)).content


async def test_retention_erases_what_ended_long_enough_ago(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "HOUSEKEEPING_SECONDS", 0.2)
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        for prompt in ("rr-old", "rr-recent"):
            await ask(h, prompt)
        await wait_for("two delivered", lambda: all_in(h, h.member_id, JobState.DELIVERED, 2))
        old, recent = sorted(await h.storage.list_jobs(h.guild_id, h.member_id), key=lambda j: j.prompt)
        jobs_t = table(Job)

        async def ended(job: Job, days: float) -> None:
            moment = h.storage.now() - timedelta(days=days)
            async with h.storage.engine.begin() as conn:
                await conn.execute(sa.update(jobs_t).where(jobs_t.c.id == job.id).values(ended_at=moment))

        await ended(old, 91)
        await ended(recent, 89)

        async def erased(job: Job) -> bool:
            stored = await h.storage.get_job(job.id or 0)
            return stored is not None and stored.erased_at is not None

        await wait_for("the worker's retention pass", lambda: erased(old))
        stored = await h.storage.get_job(old.id or 0)
        assert stored is not None
        assert (stored.prompt, stored.video_url, stored.state) == (ERASED_PROMPT, None, JobState.DELIVERED)
        await asyncio.sleep(1)  # several more passes
        kept = await h.storage.get_job(recent.id or 0)
        assert kept is not None
        assert (kept.prompt, kept.erased_at) == ("rr-recent", None)

        answer = await h.answer(await h.command("kling-admin", "retention", user_id=h.admin_id, days=0))
        assert answer.content.startswith("Prompts and links are kept forever now")
        await ended(recent, 5000)
        await asyncio.sleep(1)
        assert not await erased(recent)
        await check_ledger(h.storage)
