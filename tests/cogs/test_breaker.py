"""The provider circuit breaker through the real bot: a 401 or 402 pauses the line instead of failing
the queue; one probe per interval reaches the provider, each server hears of it once; once the account
works again, ``/kling-admin resume`` (or the next probe on its own) delivers everyone, once each.
Also with two bot processes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cogs.cards import PAUSED_NOTE
from sandbox import Sandbox
from storage import JobRequest, JobState, Storage
from storage.models import metadata
from tests.cogs.test_delivery import FAST, posted
from tests.fakes.discord_api import AttachmentSpec, FakeDiscord, FakeMessage
from tests.harness import API_KEY, Harness, png, running_bot
from tests.storage.helpers import check_ledger

#: A short probe interval keeps the tests quick; the spacing of generate calls is checked against it.
PROBE = 1.5
#: Timers are not exact: two probes may be this much closer than the interval.
SLACK = 0.25


def break_the_account(sandbox: Sandbox, status: int) -> None:
    if status == 402:
        sandbox.balance = 0  # every generate now answers 402, as the real account would
    else:
        sandbox.inject("generate", status=401, times=10_000)


def fix_the_account(sandbox: Sandbox) -> None:
    sandbox.faults.clear()
    sandbox.balance = 1_000_000


def generate_times(sandbox: Sandbox) -> list[float]:
    return sorted(r.time for r in sandbox.requests if r.route == "generate")


def assert_spaced(times: list[float]) -> None:
    """At most one generate per probe interval reached the provider."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= PROBE - SLACK for gap in gaps), gaps


def lines(fake: FakeDiscord, channel_id: int, icon: str) -> list[FakeMessage]:
    return [m for m in fake.messages_in(channel_id, include_ephemeral=False) if m.content.startswith(icon)]


async def until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


async def ask(h: Harness, user_id: int) -> int:
    receipt = await h.answer(
        await h.command("video", "text", user_id=user_id, prompt="A calm lake at dawn", model="kling-2.6")
    )
    assert receipt.embeds, receipt.content
    (job,) = await h.storage.list_jobs(h.guild_id, user_id, limit=1)
    assert job.id is not None
    return job.id


@pytest.mark.parametrize(("status", "trouble"), [(402, "out of credits"), (401, "refused the bot's API key")])
async def test_a_broken_account_pauses_the_line_and_resume_delivers_everyone(
    tmp_path: Path, status: int, trouble: str
) -> None:
    async with running_bot(tmp_path, provider_pause_probe_seconds=PROBE) as h:
        h.sandbox.estimated_time.update(FAST)
        await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
        members = [h.member_id] + [h.fake.add_member(h.guild_id, name=f"m{n}").user_id for n in range(4)]
        break_the_account(h.sandbox, status)

        first = await ask(h, members[0])
        await h.fake.wait_for_message(h.general, lambda m: m.content.startswith("⏸️"))
        ids = [first] + [await ask(h, member) for member in members[1:]]
        await asyncio.sleep(PROBE * 3)  # a few probe intervals while paused

        times = generate_times(h.sandbox)
        # Probes went on while paused, never more than one per interval, however long the asks took
        # (on a busy machine they take longer, and more intervals pass).
        assert len(times) >= 2
        assert len(times) <= 1 + (times[-1] - times[0]) / (PROBE - SLACK)
        assert_spaced(times)
        assert all(r.status == status for r in h.sandbox.requests if r.route == "generate")
        jobs = [await h.storage.get_job(i) for i in ids]
        assert [j.state for j in jobs if j is not None] == [JobState.QUEUED] * 5  # none failed
        for member in members:  # nobody refunded: every member's credits are still held
            balance = await h.storage.balance(h.guild_id, member)
            assert (balance.reserved, balance.available) == (55, 245)
        assert posted(h) == []  # no "could not be made" notice to anyone
        (pause,) = lines(h.fake, h.general, "⏸️")  # one line, never one per job
        assert trouble in pause.content
        assert "`/kling-admin resume`" in pause.content
        assert pause.allowed_mentions == {"parse": []}
        cards = [m for m in h.public_messages() if m.embeds]
        assert len(cards) == 5
        assert all(any(f["value"] == PAUSED_NOTE for f in c.embeds[0]["fields"]) for c in cards)
        assert (await h.storage.provider_account()).paused

        fix_the_account(h.sandbox)
        answer = await h.answer(await h.command("kling-admin", "resume", user_id=h.admin_id))
        assert answer.content == "UlazAI accepted the next video: video generation resumed for everyone."

        async def all_delivered() -> bool:
            states = [(await h.storage.get_job(i)).state for i in ids]  # type: ignore[union-attr]
            return all(state is JobState.DELIVERED for state in states)

        await until(all_delivered)
        await asyncio.sleep(1)  # more worker passes: nothing is generated or posted twice
        videos = posted(h)
        assert len(videos) == 5
        assert sorted(m.content.split()[0] for m in videos) == sorted(f"<@{m}>" for m in members)
        accepted = [r for r in h.sandbox.requests if r.route == "generate" and r.status < 300]
        assert len(accepted) == 5
        assert len(lines(h.fake, h.general, "⏸️")) == 1
        (resumed,) = lines(h.fake, h.general, "▶️")
        assert "resumed" in resumed.content
        assert not (await h.storage.provider_account()).paused
        await check_ledger(h.storage)


async def test_the_next_accepted_probe_resumes_the_line_without_an_admin(tmp_path: Path) -> None:
    async with running_bot(tmp_path, provider_pause_probe_seconds=PROBE) as h:
        h.sandbox.estimated_time.update(FAST)
        break_the_account(h.sandbox, 402)
        job_id = await ask(h, h.member_id)
        await until(lambda: _paused(h.storage))
        fix_the_account(h.sandbox)
        await until(lambda: _state_is(h.storage, job_id, JobState.DELIVERED))
        assert len([r for r in h.sandbox.requests if r.route == "generate"]) == 2
        await check_ledger(h.storage)


async def test_an_upload_answered_402_pauses_the_line_and_new_requests_wait(tmp_path: Path) -> None:
    async with running_bot(tmp_path, provider_pause_probe_seconds=60) as h:
        await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
        h.sandbox.inject("upload", status=402)
        refused = await h.answer(
            await h.command(
                "video", "image", prompt="Animate it", attachments={"image": AttachmentSpec(png(), "a.png")}
            )
        )
        assert "video credits are used up" in refused.content
        assert (await h.storage.provider_account()).paused
        await h.fake.wait_for_message(h.general, lambda m: m.content.startswith("⏸️"))
        # A text request needs no upload: it is taken, and waits in line with its credits held.
        receipt = await h.answer(
            await h.command("video", "text", user_id=h.admin_id, prompt="A calm lake", model="kling-2.6")
        )
        assert PAUSED_NOTE in receipt.embeds[0]["description"]
        (card,) = [m for m in h.public_messages() if m.embeds]
        assert any(f["value"] == PAUSED_NOTE for f in card.embeds[0]["fields"])
        await asyncio.sleep(1)
        assert h.provider_calls("generate") == []  # the probe is not due for a minute
        (job,) = await h.storage.list_jobs(h.guild_id, h.admin_id)
        assert job.state is JobState.QUEUED
        assert len(lines(h.fake, h.general, "⏸️")) == 1
        # While paused, a waiting request can still be cancelled, its credits back.
        press = await h.fake.send_component(
            f"video:cancel:{job.id}", message_id=receipt.id, user_id=h.admin_id
        )
        assert (await press.wait_callback()).type == 6  # acknowledged first; the receipt is edited after
        await until(lambda: _state_is(h.storage, job.id or 0, JobState.CANCELLED))
        assert (await h.storage.balance(h.guild_id, h.admin_id)).reserved == 0


async def _paused(storage: Storage) -> bool:
    return (await storage.provider_account()).paused


async def _state_is(storage: Storage, job_id: int, state: JobState) -> bool:
    job = await storage.get_job(job_id)
    return job is not None and job.state is state


async def test_two_processes_on_postgresql_pause_and_resume_together(
    tmp_path: Path, postgres_url: str
) -> None:
    async with Storage(postgres_url) as cleaner:
        await cleaner.migrate()
        async with cleaner.engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    async with FakeDiscord() as fake, Sandbox(api_key=API_KEY, task_seconds=1.0) as sandbox:
        fake.add_default_guild()
        sandbox.estimated_time.update(FAST)
        members = [fake.member_id] + [fake.add_member(fake.guild_id, name=f"m{n}").user_id for n in range(3)]
        videos, general = fake.channel_ids["videos"], fake.channel_ids["general"]
        settings: dict[str, Any] = {"database_url": postgres_url, "provider_pause_probe_seconds": PROBE}
        async with (
            running_bot(tmp_path / "a", fake=fake, sandbox=sandbox, **settings) as a,
            running_bot(tmp_path / "b", fake=fake, sandbox=sandbox, **settings) as b,
        ):
            workers = [h.bot.cogs["Delivery"].worker for h in (a, b)]  # type: ignore[attr-defined]
            await a.storage.update_guild_settings(fake.guild_id, audit_channel_id=general)
            break_the_account(sandbox, 402)
            ids = []
            for n, member in enumerate(members):
                job = await a.storage.create_job(
                    interaction_id=20_000 + n,
                    guild_id=fake.guild_id,
                    user_id=member,
                    channel_id=videos,
                    request=JobRequest(
                        model="kling-2.6", mode="text_to_video", prompt=f"scene {n}", duration=5
                    ),
                    estimate=55,
                )
                ids.append(job.id)
                if n == 0:
                    await fake.wait_for_message(general, lambda m: m.content.startswith("⏸️"))

            async def both_paused() -> bool:
                return all(w.account.paused for w in workers)

            await until(both_paused)
            await asyncio.sleep(PROBE * 3)
            assert_spaced(generate_times(sandbox))  # one probe per interval between the two of them
            assert len(lines(fake, general, "⏸️")) == 1
            states = [(await a.storage.get_job(i)).state for i in ids]  # type: ignore[union-attr, arg-type]
            assert states == [JobState.QUEUED] * 4

            fix_the_account(sandbox)  # no admin command: the next probe resumes both

            async def both_running() -> bool:
                return not any(w.account.paused for w in workers)

            await until(both_running)

            async def all_delivered() -> bool:
                jobs = [await b.storage.get_job(i) for i in ids]  # type: ignore[arg-type]
                return all(j is not None and j.state is JobState.DELIVERED for j in jobs)

            await until(all_delivered, within=30)
            await asyncio.sleep(1)
            assert len([m for m in fake.messages_in(videos, include_ephemeral=False) if m.files]) == 4
            assert len([r for r in sandbox.requests if r.route == "generate" and r.status < 300]) == 4
            assert len(lines(fake, general, "▶️")) == 1
            await check_ledger(a.storage)
