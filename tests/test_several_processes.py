"""Several bot processes on one PostgreSQL database, for real: two ``python bot.py`` with
``SHARD_COUNT=2`` and ``SHARD_IDS`` 0 and 1, against one fake Discord that sends each guild's events to
the shard ``(guild_id >> 22) % 2``, and one sandbox provider.

Every interaction reaches, and is acknowledged by, only the process running its guild's shard; every
video is posted once; and when one process is killed with SIGKILL in the middle of a job, the other
finishes that job once the dead one's lease runs out, posting it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from sandbox import Sandbox
from storage import Job, JobRequest, JobState, Storage
from tests.fakes.discord_api import FakeDiscord, FakeGuild, FakeInteraction
from tests.postgres import create_database, drop_database
from tests.processes import BotProcess, bot_processes, most_in_a_second

API_KEY = "sandbox-key-for-processes"
SHARDS = 2
LEASE_SECONDS = 3
#: How long the status call of the process that gets killed hangs (past the lease, so the other one
#: takes over while it still hangs).
HUNG_SECONDS = LEASE_SECONDS + 5
FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}
_databases = itertools.count()


@dataclass
class Server:
    """One guild of the world: its shard, its #videos and a member."""

    guild: FakeGuild
    videos: int
    member: int

    @property
    def shard(self) -> int:
        return (self.guild.id >> 22) % SHARDS


@dataclass
class World:
    fake: FakeDiscord
    sandbox: Sandbox
    storage: Storage
    servers: list[Server]
    bots: list[BotProcess]

    def shard_session(self, shard: int) -> str:
        (session,) = [
            sid
            for sid, (sid_shard, count), live in self.fake.sessions()
            if (sid_shard, count) == (shard, SHARDS) and live
        ]
        return session

    async def request(self, server: Server, prompt: str) -> FakeInteraction:
        return await self.fake.send_command(
            "video",
            subcommand="text",
            options={"prompt": prompt, "model": "kling-2.6"},
            guild_id=server.guild.id,
            channel_id=server.videos,
            user_id=server.member,
            timeout=15,
        )

    async def job_of(self, interaction: FakeInteraction, within: float = 15) -> Job:
        for _ in range(int(within / 0.1)):
            job = await self.storage.get_job_by_interaction(interaction.id)
            if job is not None:
                return job
            await asyncio.sleep(0.1)
        raise AssertionError(f"no job for interaction {interaction.id}; logs:\n{self.logs()}")

    async def wait_state(self, job_id: int, state: JobState, within: float = 30) -> Job:
        for _ in range(int(within / 0.1)):
            job = await self.storage.get_job(job_id)
            if job is not None and job.state is state:
                return job
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id} is not {state} after {within} s; logs:\n{self.logs()}")

    def videos_posted(self, server: Server) -> list[str]:
        return [m.content for m in self.fake.messages_in(server.videos) if "your video is ready" in m.content]

    def logs(self) -> str:
        return "\n".join(f"--- {bot.name} (pid {bot.pid})\n{bot.log()[-4000:]}" for bot in self.bots)


def server_on_shard(fake: FakeDiscord, shard: int, name: str) -> Server:
    guild = fake.add_guild(name, guild_id=((1_000 + shard) << 22) + 7)
    assert (guild.id >> 22) % SHARDS == shard
    videos = fake.add_channel(guild.id, "videos").id
    member = fake.add_member(guild.id, name=f"{name.lower()}-member").user_id
    return Server(guild, videos, member)


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    name = f"kling_processes_{next(_databases)}"
    url = create_database(postgres_server, name)
    yield url
    drop_database(postgres_server, name)


@contextlib.asynccontextmanager
async def make_world(folder: Path, database: str, **settings: str) -> AsyncIterator[World]:
    """The fakes, the database migrated, and one bot process per shard with ``settings``."""
    async with FakeDiscord() as fake:
        servers = [server_on_shard(fake, shard, f"Server{shard}") for shard in range(SHARDS)]
        sandbox = Sandbox(api_key=API_KEY, task_seconds=1.0)
        sandbox.estimated_time.update(FAST)
        await sandbox.start("127.0.0.1", 0)
        try:
            async with Storage(database) as storage:
                await storage.migrate()  # before the bots, so both find the schema at head
                common = {
                    "ULAZAI_API_KEY": API_KEY,
                    "ULAZAI_BASE_URL": sandbox.base_url,
                    "DATABASE_URL": database,
                    "DISCORD_API_BASE_URL": fake.api_base,
                    "DISCORD_GATEWAY_URL": fake.gateway_url,
                    "SHARD_COUNT": str(SHARDS),
                    "WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
                    **settings,
                }
                envs = [(f"shard{shard}", {**common, "SHARD_IDS": str(shard)}) for shard in range(SHARDS)]
                async with bot_processes(folder, envs) as bots:
                    world = World(fake, sandbox, storage, servers, bots)
                    for server in servers:
                        await fake.wait_until_ready(timeout=60, guild_id=server.guild.id)
                    yield world
        finally:
            await sandbox.close()


@pytest.fixture
async def world(tmp_path: Path, database: str) -> AsyncIterator[World]:
    async with make_world(tmp_path, database) as w:
        yield w


async def test_each_process_answers_its_own_shard_and_a_killed_one_leaves_no_job_behind(world: World) -> None:
    w = world
    # -- one video in each server: acknowledged once, by its own shard's process; posted once
    first = [await w.request(server, f"first video in {server.guild.name}") for server in w.servers]
    for server, interaction in zip(w.servers, first, strict=True):
        callback = await interaction.wait_callback(timeout=15)
        assert (callback.type, callback.ephemeral) == (5, True)
        assert interaction.delivered_to == [w.shard_session(server.shard)]  # nobody else got it
        assert interaction.refused_callbacks == 0
        receipt = await interaction.wait_followup(timeout=15)
        assert receipt.embeds[0]["title"] == "Your video is queued", receipt.content
    for interaction in first:
        job = await w.job_of(interaction)
        assert job.id is not None
        await w.wait_state(job.id, JobState.DELIVERED)
    assert [len(w.videos_posted(server)) for server in w.servers] == [1, 1]

    # -- a job whose status call hangs: kill -9 the process following it
    w.sandbox.inject("status", delay=HUNG_SECONDS)
    hung = await w.request(w.servers[0], "the video whose process dies")
    job = await w.job_of(hung)
    job_id = job.id
    assert job_id is not None
    for _ in range(300):
        job = await w.storage.get_job(job_id) or job
        if not w.sandbox.faults and job.state is JobState.PROCESSING and job.lease_owner:
            break  # its first status call is in the air, under the follower's lease
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the status call never started; logs:\n{w.logs()}")
    assert job.lease_owner is not None
    (victim,) = [bot for bot in w.bots if f":{bot.pid}:" in job.lease_owner]
    (survivor,) = [bot for bot in w.bots if bot is not victim]
    await victim.kill()

    delivered = await w.wait_state(job_id, JobState.DELIVERED, within=LEASE_SECONDS + 30)
    assert survivor.running
    assert delivered.lease_owner is None
    generates = [r for r in w.sandbox.requests if r.route == "generate"]
    assert len(generates) == 3  # nothing was generated twice
    assert len(w.videos_posted(w.servers[0])) == 2  # posted once, by the survivor
    assert len(w.videos_posted(w.servers[1])) == 1
    assert "Traceback" not in survivor.log(), survivor.log()
    for _ in range(HUNG_SECONDS * 10):  # the dead process's hung call ends in the sandbox too
        if any(r.fault for r in w.sandbox.requests if r.route == "status"):
            break
        await asyncio.sleep(0.1)


async def test_two_processes_keep_to_one_provider_budget(tmp_path: Path, database: str) -> None:
    """300 queued jobs, two processes working them: the provider never sees more than
    PROVIDER_MAX_RPS calls in any one-second window (each process alone would send that many)."""
    budget, jobs = 20, 300
    settings = {"PROVIDER_MAX_RPS": str(budget), "MAX_CONCURRENT_GENERATIONS": str(jobs)}
    async with make_world(tmp_path, database, **settings) as w:
        server = w.servers[0]
        await w.storage.update_guild_settings(server.guild.id, max_active_jobs=jobs)
        await w.storage.grant(server.guild.id, server.member, 55 * jobs, actor_id=None)
        request = JobRequest(model="kling-2.6", mode="text_to_video", prompt="a lake at dawn", duration=5)
        for n in range(jobs):
            await w.storage.create_job(
                interaction_id=10_000 + n,
                guild_id=server.guild.id,
                user_id=server.member,
                channel_id=server.videos,
                request=request,
                estimate=55,
            )
        owners: set[str] = set()
        for _ in range(900):  # until every job was submitted (about 300 / 18 s), noting who worked
            waiting = await w.storage.list_jobs(
                server.guild.id, server.member, limit=jobs, states=[JobState.QUEUED, JobState.SUBMITTING]
            )
            owners |= {job.lease_owner.split(":")[1] for job in waiting if job.lease_owner}
            if not waiting:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{len(waiting)} jobs not submitted yet; logs:\n{w.logs()}")
        calls = [r.time for r in w.sandbox.requests if r.route in ("generate", "status", "upload")]
        assert len([r for r in w.sandbox.requests if r.route == "generate"]) == jobs
        assert most_in_a_second(calls) <= budget
        assert owners == {str(bot.pid) for bot in w.bots}  # both processes did the work
