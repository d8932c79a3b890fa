"""Credits: allowance refills at UTC boundaries, grants, settlement and refunds, the server budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import (
    BudgetExceeded,
    DuplicateOperation,
    InsufficientCredits,
    JobState,
    LedgerKind,
    Period,
    Storage,
    TooManyActiveJobs,
)
from tests.storage.helpers import FakeClock, aware, check_ledger, claim, ledger_entries, make_job

G, U = 1, 10


async def submit(storage: Storage, job_id: int, used: int) -> None:
    await claim(storage, "w", limit=50)
    await storage.mark_submitting(job_id, owner="w")
    await storage.mark_processing(job_id, owner="w", task_id=f"t{job_id}", credits_used=used)


async def test_new_member_gets_the_default_allowance(storage: Storage) -> None:
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus, balance.reserved, balance.available) == (300, 0, 0, 300)
    assert balance.period is Period.WEEKLY
    assert balance.period_start == datetime(2024, 12, 30, tzinfo=UTC)
    assert balance.next_refill_at == datetime(2025, 1, 6, tzinfo=UTC)
    assert aware(balance.period_start)
    entries = await ledger_entries(storage, G, U)
    assert [(e.kind, e.amount) for e in entries] == [(LedgerKind.REFILL, 300)]
    await check_ledger(storage)


async def test_refill_at_the_boundary_expires_the_rest(storage: Storage, clock: FakeClock) -> None:
    await make_job(storage, estimate=120)
    assert (await storage.balance(G, U)).allowance_left == 180
    clock.advance(minutes=59)  # Sunday 23:59: same week
    assert (await storage.balance(G, U)).allowance_left == 180
    clock.advance(minutes=1)  # Monday 00:00 UTC: a new week
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.reserved) == (300, 120)
    assert balance.period_start == datetime(2025, 1, 6, tzinfo=UTC)
    kinds = [(e.kind, e.allowance_delta) for e in await ledger_entries(storage, G, U)]
    assert kinds[:2] == [(LedgerKind.REFILL, 300), (LedgerKind.EXPIRE, -180)]
    # Only once per period, however often the account is touched.
    await storage.balance(G, U)
    assert len(await ledger_entries(storage, G, U)) == len(kinds)
    await check_ledger(storage)


async def test_allowance_is_the_best_of_default_and_roles(storage: Storage) -> None:
    await storage.update_guild_settings(G, role_allowances={501: 1000, 502: 50})
    assert (await storage.balance(G, U, role_ids=[502])).allowance_left == 300
    # Gaining a better role mid-period tops the allowance up at once, once.
    assert (await storage.balance(G, U, role_ids=[501, 502])).allowance_left == 1000
    assert (await storage.balance(G, U, role_ids=[501])).allowance_total == 1000
    # Losing it keeps this period's allowance.
    assert (await storage.balance(G, U)).allowance_left == 1000
    await check_ledger(storage)


async def test_lost_role_applies_at_the_next_refill(storage: Storage, clock: FakeClock) -> None:
    await storage.set_role_allowance(G, 501, 1000)
    assert (await storage.balance(G, U, role_ids=[501])).allowance_left == 1000
    clock.advance(hours=1)
    assert (await storage.balance(G, U)).allowance_left == 300


async def test_daily_and_monthly_periods(storage: Storage, clock: FakeClock) -> None:
    await storage.update_guild_settings(G, allowance_period="daily", allowance_credits=100)
    await make_job(storage, estimate=100)
    with pytest.raises(InsufficientCredits):
        await make_job(storage, estimate=1)
    clock.advance(hours=1)
    await make_job(storage, estimate=100)
    await storage.update_guild_settings(G, allowance_period="monthly")
    clock.set(datetime(2025, 2, 1, tzinfo=UTC))
    assert (await storage.balance(G, U)).period_start == datetime(2025, 2, 1, tzinfo=UTC)
    await check_ledger(storage)


async def test_grants_add_bonus_and_negative_grants_stop_at_zero(storage: Storage) -> None:
    result = await storage.grant(G, U, 250, actor_id=7, reason="contest winner", idempotency_key="i1")
    assert (result.granted, result.balance.bonus, result.balance.available) == (250, 250, 550)
    with pytest.raises(DuplicateOperation):
        await storage.grant(G, U, 250, actor_id=7, idempotency_key="i1")
    result = await storage.grant(G, U, -400, actor_id=7)
    assert (result.granted, result.balance.bonus, result.balance.allowance_left) == (-250, 0, 300)
    entries = await ledger_entries(storage, G, U)
    assert entries[0].kind == LedgerKind.GRANT
    assert entries[0].actor_id == 7
    await check_ledger(storage)


async def test_spending_takes_allowance_first_then_bonus(storage: Storage) -> None:
    await storage.grant(G, U, 100, actor_id=7)
    job = await make_job(storage, estimate=350)
    assert (job.hold_allowance, job.hold_bonus) == (300, 50)
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus, balance.reserved) == (0, 50, 350)
    with pytest.raises(InsufficientCredits) as refused:
        await make_job(storage, estimate=51)
    assert (refused.value.available, refused.value.needed) == (50, 51)
    await check_ledger(storage)


async def test_settle_below_the_estimate_returns_the_difference(storage: Storage) -> None:
    job = await make_job(storage, estimate=120)
    await submit(storage, job.id or 0, used=110)
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.reserved) == (190, 0)
    settled = await storage.get_job(job.id or 0)
    assert settled is not None
    assert (settled.member_charged, settled.credits_used, settled.held_credits) == (110, 110, 0)
    await check_ledger(storage)


async def test_settle_above_the_estimate_takes_what_is_there(storage: Storage) -> None:
    await storage.grant(G, U, 30, actor_id=7)
    job = await make_job(storage, estimate=250)
    await submit(storage, job.id or 0, used=400)  # 150 more than held; 50 + 30 available
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus, balance.reserved) == (0, 0, 0)
    settled = await storage.get_job(job.id or 0)
    assert settled is not None
    assert (settled.member_charged, settled.shortfall_credits) == (330, 70)
    note = (await ledger_entries(storage, G, U))[0].note
    assert note is not None
    assert "70 could not be covered" in note
    await check_ledger(storage)


async def test_failure_refunds_everything_paid(storage: Storage) -> None:
    await storage.grant(G, U, 100, actor_id=7)
    job = await make_job(storage, estimate=350)
    await submit(storage, job.id or 0, used=360)
    await storage.fail(job.id or 0, owner="w", reason="provider failed")
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus, balance.reserved, balance.active_jobs) == (300, 100, 0, 0)
    await check_ledger(storage)


async def test_refund_after_the_period_ended_comes_back_as_bonus(storage: Storage, clock: FakeClock) -> None:
    job = await make_job(storage, estimate=200)
    await submit(storage, job.id or 0, used=200)
    clock.advance(hours=2)  # into next week: 300 fresh allowance, the old 100 expired
    await storage.fail(job.id or 0, owner="w", reason="provider failed")
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus) == (300, 200)
    await check_ledger(storage)


async def test_refund_before_the_account_was_refilled_is_not_lost(storage: Storage, clock: FakeClock) -> None:
    """The refund comes first in the new week, the lazy refill after: the credits must survive."""
    job = await make_job(storage, estimate=200)
    clock.advance(hours=2)
    await storage.cancel(job.id or 0, actor_id=U)
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus) == (300, 200)
    await check_ledger(storage)


async def test_release_within_the_period_returns_to_the_allowance(storage: Storage) -> None:
    job = await make_job(storage, estimate=200, review=True)
    assert job.state is JobState.PENDING_REVIEW
    await storage.reject(job.id or 0, moderator_id=99, reason="not appropriate")
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.bonus, balance.active_jobs) == (300, 0, 0)
    release = (await ledger_entries(storage, G, U))[0]
    assert (release.kind, release.actor_id, release.amount) == (LedgerKind.RELEASE, 99, 200)
    await check_ledger(storage)


async def test_active_job_cap(storage: Storage) -> None:
    await storage.grant(G, U, 1000, actor_id=7)
    first = await make_job(storage, estimate=10)
    await make_job(storage, estimate=10)
    with pytest.raises(TooManyActiveJobs) as refused:
        await make_job(storage, estimate=10)
    assert (refused.value.active, refused.value.limit) == (2, 2)
    await storage.cancel(first.id or 0, actor_id=U)
    await make_job(storage, estimate=10)
    await check_ledger(storage)


async def test_completed_jobs_no_longer_count_as_active(storage: Storage) -> None:
    job = await make_job(storage, estimate=10)
    await submit(storage, job.id or 0, used=10)
    await storage.mark_completed(job.id or 0, owner="w", video_url="https://v/1.mp4", credits_charged=10)
    assert (await storage.balance(G, U)).active_jobs == 0
    await storage.fail(job.id or 0, owner="w", reason="could not post")  # completed -> failed: no refund
    assert (await storage.balance(G, U)).allowance_left == 290
    await check_ledger(storage)


async def test_budget_cap_counts_reservations_and_settlements(storage: Storage, clock: FakeClock) -> None:
    await storage.update_guild_settings(G, budget_credits=250, budget_period="daily")
    a = await make_job(storage, user_id=11, estimate=100)
    await make_job(storage, user_id=12, estimate=100)
    with pytest.raises(BudgetExceeded) as refused:
        await make_job(storage, user_id=13, estimate=100)
    assert (refused.value.budget, refused.value.spent, refused.value.needed) == (250, 200, 100)
    assert refused.value.resets_at == datetime(2025, 1, 6, tzinfo=UTC)
    await submit(storage, a.id or 0, used=40)  # settles to 40: 140 counted
    assert (await storage.guild_spend(G)).spent == 140
    await make_job(storage, user_id=13, estimate=100)
    await storage.fail(a.id or 0, owner="w", reason="failed")  # refunded: comes off the budget
    spend = await storage.guild_spend(G)
    assert (spend.spent, spend.budget, spend.remaining) == (200, 250, 50)
    clock.advance(hours=1)  # a new day: a fresh budget
    assert (await storage.guild_spend(G)).spent == 0
    await make_job(storage, user_id=14, estimate=250)
    assert (await storage.guild_spend(G)).spent == 250
    await check_ledger(storage)


async def test_refunds_from_an_ended_budget_period_leave_the_new_one_alone(
    storage: Storage, clock: FakeClock
) -> None:
    await storage.update_guild_settings(G, budget_credits=1000, budget_period="daily")
    job = await make_job(storage, estimate=100)
    clock.advance(hours=1)
    await make_job(storage, estimate=100)
    await storage.cancel(job.id or 0, actor_id=U)
    assert (await storage.guild_spend(G)).spent == 100


async def test_timestamps_are_aware_utc(storage: Storage, clock: FakeClock) -> None:
    job = await make_job(storage)
    loaded = await storage.get_job(job.id or 0)
    assert loaded is not None
    assert aware(loaded.created_at)
    assert loaded.created_at == clock.current
    settings = await storage.get_guild_settings(G)
    assert aware(settings.created_at)


async def test_naive_clock_is_refused(migrated_url: str) -> None:
    naive = Storage(migrated_url, clock=lambda: datetime(2025, 1, 1))
    try:
        with pytest.raises(ValueError, match="naive"):
            await naive.balance(G, U)
    finally:
        await naive.close()


async def test_moving_clock_helper(clock: FakeClock) -> None:
    assert clock.advance(timedelta(days=1)) == datetime(2025, 1, 6, 23, tzinfo=UTC)
