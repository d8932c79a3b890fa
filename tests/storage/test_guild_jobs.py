"""Per-server counts of unfinished jobs (what ``/kling-admin settings`` shows as "jobs in flight")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from storage import GuildSettings, GuildSettingsChanges, JobState, Storage
from tests.storage.helpers import claim, make_job


async def test_unfinished_jobs_counts_one_server_by_state(storage: Storage) -> None:
    assert await storage.unfinished_jobs(1) == {}
    await make_job(storage, guild_id=1, user_id=10, review=True)
    queued = await make_job(storage, guild_id=1, user_id=11)
    cancelled = await make_job(storage, guild_id=1, user_id=12)
    await storage.cancel(cancelled.id or 0, actor_id=12)
    await make_job(storage, guild_id=2, user_id=10)  # another server: not counted
    assert await storage.unfinished_jobs(1) == {JobState.PENDING_REVIEW: 1, JobState.QUEUED: 1}

    [claimed] = await claim(storage, "w")
    assert claimed.id == queued.id
    await storage.mark_submitting(queued.id or 0, owner="w")
    assert await storage.unfinished_jobs(1) == {JobState.PENDING_REVIEW: 1, JobState.SUBMITTING: 1}
    assert await storage.unfinished_jobs(2) == {JobState.QUEUED: 1}


async def test_edits_computed_from_current_settings_never_lose_each_other(storage: Storage) -> None:
    """Twenty admins adding a term at the same instant: all twenty terms land."""

    def adding(term: str) -> Callable[[GuildSettings], GuildSettingsChanges]:
        return lambda current: {"blocklist_terms": [*current.blocklist_terms, term]}

    await asyncio.gather(*(storage.edit_guild_settings(1, adding(f"term{n}")) for n in range(20)))
    settings = await storage.get_guild_settings(1)
    assert sorted(settings.blocklist_terms) == sorted(f"term{n}" for n in range(20))


async def test_an_edit_that_raises_writes_nothing(storage: Storage) -> None:
    def refuse(current: GuildSettings) -> GuildSettingsChanges:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await storage.edit_guild_settings(1, refuse)
    assert (await storage.get_guild_settings(1)).blocklist_terms == []
