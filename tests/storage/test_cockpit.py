"""Storage for the operator's cockpit (issue 14), on both engines: the provider pause every process
shares (one starter, one probe per interval, one ender), the servers told of it once, low-balance
crossings, bans that cancel waiting jobs with their credits back, and the watchers metrics hang on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage import Job, JobState, Storage
from tests.storage.helpers import FakeClock, check_ledger, claim, make_job

INTERVAL = timedelta(seconds=60)


async def test_one_caller_starts_a_pause_and_one_ends_it(storage: Storage, clock: FakeClock) -> None:
    assert not (await storage.provider_account()).paused
    started = await asyncio.gather(
        *(storage.pause_provider(status=402, message="no credits") for _ in range(5))
    )
    winners = [state for state in started if state is not None]
    assert len(winners) == 1
    (state,) = winners
    assert (state.paused, state.status, state.message, state.since) == (True, 402, "no credits", clock())
    assert state.last_probe_at == clock()  # the refused call was the first probe
    assert await storage.pause_provider(status=401, message="later") is None  # already paused: kept
    assert (await storage.provider_account()).status == 402

    ended = await asyncio.gather(*(storage.resume_provider() for _ in range(5)))
    resumed = [r for r in ended if r is not None]
    assert len(resumed) == 1
    assert resumed[0].account.since == clock()
    assert not (await storage.provider_account()).paused
    assert await storage.resume_provider() is None


async def test_a_pause_stops_claims_and_lets_one_probe_through_per_interval(
    storage: Storage, clock: FakeClock
) -> None:
    await storage.grant(1, 10, 1000, actor_id=None)
    await storage.update_guild_settings(1, max_active_jobs=10)
    for _ in range(3):
        await make_job(storage, estimate=50)
    await storage.pause_provider(status=402, message="no credits")
    assert await storage.claim_fair_for_submit("w", limit=5, max_in_flight=10) == []
    # The pause itself counts as a probe: none is due until an interval passed.
    assert await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10) == []
    clock.advance(seconds=59)
    assert await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10) == []
    clock.advance(seconds=1)
    probes = await asyncio.gather(
        *(storage.claim_probe_for_submit(f"w{n}", interval=INTERVAL, max_in_flight=10) for n in range(4))
    )
    assert sorted(len(p) for p in probes) == [0, 0, 0, 1]  # one process, one job
    clock.advance(seconds=30)
    assert await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10) == []
    state = await storage.probe_soon()  # /kling-admin resume: the next probe is due now
    assert state.paused
    assert state.last_probe_at is None
    assert len(await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10)) == 1
    await storage.resume_provider()
    assert len(await storage.claim_fair_for_submit("w", limit=5, max_in_flight=10)) == 1  # the third


async def test_a_probe_slot_is_not_used_up_when_nothing_waits(storage: Storage, clock: FakeClock) -> None:
    await storage.pause_provider(status=401, message="bad key")
    clock.advance(seconds=61)
    assert await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10) == []
    before = (await storage.provider_account()).last_probe_at
    job = await make_job(storage, estimate=10)
    (probe,) = await storage.claim_probe_for_submit("w", interval=INTERVAL, max_in_flight=10)
    assert probe.id == job.id
    assert before is not None
    assert (await storage.provider_account()).last_probe_at == clock()


async def test_each_server_is_told_of_a_pause_once_and_of_its_end(storage: Storage, clock: FakeClock) -> None:
    for guild_id in (1, 2, 3):
        await storage.grant(guild_id, 10, 1000, actor_id=None)
    await make_job(storage, guild_id=1, estimate=10)
    await make_job(storage, guild_id=2, estimate=10, review=True)
    done = await make_job(storage, guild_id=3, estimate=0)  # ends before the pause: not waiting
    await storage.cancel(done.id or 0, actor_id=None)
    state = await storage.pause_provider(status=402, message="no credits")
    assert state is not None
    assert state.since is not None
    told = await asyncio.gather(storage.tell_of_pause(state.since), storage.tell_of_pause(state.since))
    assert sorted(told[0] + told[1]) == [1, 2]
    assert await storage.tell_of_pause(state.since, [2, 4]) == [4]  # a newcomer to the pause
    resumed = await storage.resume_provider()
    assert resumed is not None
    assert resumed.guild_ids == [1, 2, 4]
    clock.advance(minutes=5)
    again = await storage.pause_provider(status=402, message="no credits")
    assert again is not None
    assert again.since is not None
    assert await storage.tell_of_pause(again.since) == [1, 2]  # a new pause is news again


async def test_a_low_balance_is_one_line_per_crossing(storage: Storage) -> None:
    await storage.update_guild_settings(1, credits_alert=500)
    await storage.update_guild_settings(2, credits_alert=100)
    await storage.get_guild_settings(3)  # no threshold: never alerted
    assert await storage.note_credits_remaining(900) == []
    assert await storage.note_credits_remaining(450) == [(1, 500)]
    assert await storage.note_credits_remaining(400) == []  # still below: already said
    assert await storage.note_credits_remaining(50) == [(2, 100)]
    assert await storage.note_credits_remaining(600) == []  # back above both: armed again
    assert await storage.note_credits_remaining(90) == [(1, 500), (2, 100)]
    account = await storage.provider_account()
    assert account.credits_remaining == 90
    await storage.update_guild_settings(1, credits_alert=80)  # a new threshold is a new crossing
    assert await storage.note_credits_remaining(70) == [(1, 80)]


async def test_a_ban_cancels_waiting_jobs_and_gives_the_credits_back(storage: Storage) -> None:
    await storage.grant(1, 10, 1000, actor_id=None)
    await storage.update_guild_settings(1, max_active_jobs=10)
    leased = await make_job(storage, estimate=100)
    await claim(storage, "w")  # a worker is about to submit it: a cancel still wins
    review = await make_job(storage, estimate=100, review=True)
    queued = await make_job(storage, estimate=100)
    other = await make_job(storage, user_id=11, estimate=0)
    result = await storage.ban(1, 10, reason="spam", actor_id=7)
    assert result is not None
    ban, cancelled = result
    assert (ban.reason, ban.banned_by) == ("spam", 7)
    assert [job.id for job in cancelled] == [leased.id, review.id, queued.id]
    assert all(job.state is JobState.CANCELLED for job in cancelled)
    balance = await storage.balance(1, 10)
    assert (balance.reserved, balance.available, balance.active_jobs) == (0, 1300, 0)
    assert (await storage.get_job(other.id or 0)).state is JobState.QUEUED  # type: ignore[union-attr]
    assert await storage.ban(1, 10, reason="again", actor_id=8) is None
    assert [b.user_id for b in await storage.list_bans(1)] == [10]
    assert await storage.list_bans(2) == []
    await check_ledger(storage)
    lifted = await storage.unban(1, 10)
    assert lifted is not None
    assert lifted.reason == "spam"
    assert await storage.get_ban(1, 10) is None
    assert await storage.unban(1, 10) is None


async def test_a_ban_leaves_a_job_the_provider_is_making(storage: Storage) -> None:
    await storage.grant(1, 10, 1000, actor_id=None)
    job = await make_job(storage, estimate=100)
    (claimed,) = await storage.claim_fair_for_submit("w", limit=1, max_in_flight=10)
    await storage.mark_submitting(claimed.id or 0, owner="w")
    await storage.mark_processing(claimed.id or 0, owner="w", task_id="t", credits_used=100)
    result = await storage.ban(1, 10, reason=None, actor_id=7)
    assert result is not None
    assert result[1] == []
    assert (await storage.get_job(job.id or 0)).state is JobState.PROCESSING  # type: ignore[union-attr]
    await check_ledger(storage)


async def test_watchers_hear_of_every_creation_and_move_after_it_committed(storage: Storage) -> None:
    heard: list[tuple[str, int | None, JobState]] = []
    stop = storage.watch(lambda what, job: heard.append((what, job.id, job.state)))

    def broken(what: str, job: Job) -> None:
        raise RuntimeError("a broken watcher is logged, never in the way")

    storage.watch(broken)
    job = await make_job(storage, estimate=10)
    await storage.cancel(job.id or 0, actor_id=None)
    assert heard == [("create", job.id, JobState.QUEUED), ("cancel", job.id, JobState.CANCELLED)]
    stop()
    await make_job(storage, estimate=10)
    assert len(heard) == 2


async def test_reports_read_one_server_between_two_moments(storage: Storage, clock: FakeClock) -> None:
    await storage.grant(1, 10, 1000, actor_id=None)
    await storage.update_guild_settings(1, max_active_jobs=10)
    first = await make_job(storage, estimate=10)
    clock.advance(hours=2)
    second = await make_job(storage, estimate=10)
    await make_job(storage, guild_id=2, estimate=0)
    start = clock() - timedelta(hours=1)
    assert [j.id for j in await storage.jobs_created_between(1, start, clock() + timedelta(seconds=1))] == [
        second.id
    ]
    assert [j.id for j in await storage.unfinished_jobs_of(1)] == [first.id, second.id]
    counts = await storage.state_counts([JobState.QUEUED, JobState.PROCESSING])
    assert counts == {JobState.QUEUED: 3, JobState.PROCESSING: 0}
