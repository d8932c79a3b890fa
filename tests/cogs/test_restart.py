"""Exactly once, whatever happens to the process: kill -9 mid-job, restart; two workers on one PostgreSQL.

The kill test runs ``python bot.py`` for real (a subprocess against the fake Discord and the sandbox on
127.0.0.1), kills it with SIGKILL while the provider is generating, starts it again on the same
database, and checks the video is posted once and the ledger balances.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from sandbox import Sandbox
from storage import Job, JobRequest, JobState, Storage
from storage.models import metadata
from tests.fakes.discord_api import FakeDiscord, FakeMessage
from tests.harness import API_KEY, TOKEN, running_bot
from tests.storage.helpers import check_ledger

ROOT = Path(__file__).resolve().parents[2]
FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}


def videos_posted(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    """Messages carrying a file that are not status cards (a finished card carries its poster)."""
    return [m for m in fake.messages_in(channel_id, include_ephemeral=False) if m.files and not m.embeds]


async def until(condition: object, *, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not callable(condition) or not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def bot_process(
    fake: FakeDiscord, sandbox: Sandbox, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ULAZAI_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=TOKEN,
        ULAZAI_API_KEY=API_KEY,
        ULAZAI_BASE_URL=sandbox.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        DEV_GUILD_ID=str(fake.guild_id),
        HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
        DISCORD_API_BASE_URL=fake.api_base,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        WORKER_LEASE_SECONDS="2",
        LOG_LEVEL="INFO",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env, stderr=(tmp_path / "bot.log").open("ab")
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_kill_9_mid_job_then_restart_posts_exactly_once(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, Sandbox(api_key=API_KEY, task_seconds=4.0) as sandbox:
        fake.add_default_guild()
        sandbox.estimated_time.update(FAST)
        videos = fake.channel_ids["videos"]
        async with bot_process(fake, sandbox, tmp_path) as first:
            await fake.wait_until_ready(timeout=30)
            interaction = await fake.send_command(
                "video",
                subcommand="text",
                options={"prompt": "A lighthouse in a storm", "model": "kling-2.6"},
                user_id=fake.member_id,
                channel_id=videos,
            )
            await interaction.wait_callback(timeout=10)
            await interaction.wait_followup(timeout=10)
            # Mid-job: the provider is generating and the bot has recorded it (a kill between the
            # generate answer and that commit is the "lost" case, tested in test_delivery.py).
            async with Storage(f"sqlite+aiosqlite:///{tmp_path}/bot.db") as peek:
                for _ in range(600):
                    jobs = await peek.list_jobs(fake.guild_id, fake.member_id)
                    if jobs and jobs[0].state is JobState.PROCESSING:
                        break
                    await asyncio.sleep(0.05)
                assert jobs[0].state is JobState.PROCESSING
            first.kill()  # SIGKILL: no cleanup, no goodbye, mid-generation
            await first.wait()
        await fake.wait_until_disconnected(timeout=10)
        assert videos_posted(fake, videos) == []

        async with bot_process(fake, sandbox, tmp_path) as second:
            await fake.wait_for_message(videos, lambda m: bool(m.files), timeout=40)
            await asyncio.sleep(3)  # more worker passes: nothing is posted twice
            second.terminate()
            assert await asyncio.wait_for(second.wait(), 20) == 0

        assert len(videos_posted(fake, videos)) == 1
        assert len([r for r in sandbox.requests if r.route == "generate"]) == 1
        async with Storage(f"sqlite+aiosqlite:///{tmp_path}/bot.db") as storage:
            (job,) = await storage.list_jobs(fake.guild_id, fake.member_id)
            assert job.state is JobState.DELIVERED
            assert job.posted_message_id == videos_posted(fake, videos)[0].id
            balance = await storage.balance(fake.guild_id, fake.member_id)
            assert (balance.reserved, balance.available) == (0, 300 - (job.credits_used or 0))
            await check_ledger(storage)


async def test_a_repeated_post_of_the_same_job_is_the_same_message(tmp_path: Path) -> None:
    """The crash window between posting and committing ``delivered``: the nonce makes a re-post a no-op."""
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        receipt = await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
        assert receipt.embeds
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        assert job.id is not None
        await until(lambda: len(videos_posted(h.fake, h.videos)) == 1)
        delivered: Job | None = None
        for _ in range(200):  # the worker commits "delivered" right after the post
            delivered = await h.storage.get_job(job.id)
            if delivered is not None and delivered.state is JobState.DELIVERED:
                break
            await asyncio.sleep(0.05)
        assert delivered is not None
        assert delivered.state is JobState.DELIVERED
        cog = h.bot.get_cog("Delivery")
        again, _ = await cog.post(delivered, None, None)  # type: ignore[union-attr]
        assert again is not None
        assert again.id == delivered.posted_message_id
        assert len(videos_posted(h.fake, h.videos)) == 1
        assert len([m for m in h.public_messages() if not m.embeds]) == 1


async def test_two_workers_on_one_postgresql_deliver_each_job_once(tmp_path: Path, postgres_url: str) -> None:
    async with Storage(postgres_url) as cleaner:
        await cleaner.migrate()
        async with cleaner.engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    async with FakeDiscord() as fake, Sandbox(api_key=API_KEY, task_seconds=1.0) as sandbox:
        fake.add_default_guild()
        sandbox.estimated_time.update(FAST)
        members = [fake.member_id] + [fake.add_member(fake.guild_id, name=f"m{n}").id for n in range(4)]
        videos = fake.channel_ids["videos"]
        # A small global cap makes the two workers take turns instead of one claiming everything.
        settings: dict[str, Any] = {"database_url": postgres_url, "max_concurrent_generations": 4}
        async with (
            running_bot(tmp_path / "a", fake=fake, sandbox=sandbox, **settings) as a,
            running_bot(tmp_path / "b", fake=fake, sandbox=sandbox, **settings) as b,
        ):
            submitted = {"a": 0, "b": 0}
            for name, harness in (("a", a), ("b", b)):
                worker = harness.bot.get_cog("Delivery").worker  # type: ignore[union-attr]
                original = worker.submit

                async def counting(job: Job, name: str = name, original: Any = original) -> None:
                    submitted[name] += 1
                    await original(job)

                worker.submit = counting
            await a.storage.update_guild_settings(fake.guild_id, max_active_jobs=20, allowance_credits=10_000)
            ids = []
            for n in range(20):
                job = await a.storage.create_job(
                    interaction_id=10_000 + n,
                    guild_id=fake.guild_id,
                    user_id=members[n % len(members)],
                    channel_id=videos,
                    request=JobRequest(
                        model="kling-2.6", mode="text_to_video", prompt=f"scene {n}", duration=5
                    ),
                    estimate=55,
                )
                ids.append(job.id)

            async def all_delivered() -> bool:
                states = [(await b.storage.get_job(i)).state for i in ids]  # type: ignore[union-attr, arg-type]
                return all(state is JobState.DELIVERED for state in states)

            for _ in range(900):
                if await all_delivered():
                    break
                await asyncio.sleep(0.1)
            assert await all_delivered()
            await asyncio.sleep(2)  # both workers keep passing: nothing more happens
            posted = videos_posted(fake, videos)
            assert len(posted) == 20
            assert len([r for r in sandbox.requests if r.route == "generate"]) == 20
            jobs = [await a.storage.get_job(i) for i in ids]  # type: ignore[arg-type]
            assert sorted(j.posted_message_id for j in jobs) == sorted(m.id for m in posted)  # type: ignore[union-attr, type-var]
            await check_ledger(a.storage)
            assert submitted["a"] > 0
            assert submitted["b"] > 0  # both really worked the queue
            assert submitted["a"] + submitted["b"] == 20
