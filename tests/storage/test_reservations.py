"""Creating a job takes the common path (four statements) or the general one; both must agree."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage import BudgetExceeded, InsufficientCredits, JobState, Storage, TooManyActiveJobs, reservations
from storage.models import LedgerEntry, table
from tests.storage.helpers import FakeClock, check_ledger, make_job

G, U = 1, 10


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which path each reservation took: ``common``, or ``general`` after a miss."""
    taken: list[str] = []
    common = reservations.reserve_common

    def spy(connection: sa.Connection, plan: reservations.Reservation) -> object:
        try:
            result = common(connection, plan)
        except reservations.NotCommon:
            taken.append("general")
            raise
        except Exception:
            taken.append("refused")
            raise
        taken.append("common")
        return result

    monkeypatch.setattr(reservations, "reserve_common", spy)
    return taken


async def _ledger(storage: Storage, job_id: int | None) -> tuple[object, ...]:
    ledger = table(LedgerEntry)
    async with storage.engine.connect() as conn:
        row = (await conn.execute(sa.select(ledger).where(ledger.c.job_id == job_id))).one()
    return (row.kind, row.amount, row.allowance_delta, row.bonus_delta, row.reserved_delta, row.actor_id)


async def test_both_paths_write_the_same_job_and_ledger_row(storage: Storage, paths: list[str]) -> None:
    await storage.grant(G, U, 1000, actor_id=1)
    first = await make_job(storage, estimate=200, role_ids=[5], review=True)  # known member: common
    await storage.update_guild_settings(G, allowance_credits=400)  # a top-up is due: general
    second = await make_job(storage, estimate=200, role_ids=[5], review=True)
    assert paths == ["common", "general"]
    for job in (first, second):
        stored = await storage.get_job(job.id or 0)
        assert stored is not None
        assert job.model_dump() == stored.model_dump()  # what create_job returns is what it stored
        assert job.state is JobState.PENDING_REVIEW
        assert (job.hold_allowance, job.hold_bonus, job.budget_counted) == (200, 0, 200)
        assert await _ledger(storage, job.id) == ("reserve", 200, -200, 0, 200, U)
    await check_ledger(storage)


async def test_a_new_server_and_member_take_the_general_path(storage: Storage, paths: list[str]) -> None:
    await make_job(storage, guild_id=7, estimate=100)
    await make_job(storage, guild_id=7, estimate=100)
    assert paths == ["general", "common"]
    await check_ledger(storage)


async def test_a_refill_takes_the_general_path(storage: Storage, clock: FakeClock, paths: list[str]) -> None:
    await make_job(storage, estimate=100)
    clock.advance(days=1)  # the weekly boundary: the next reservation refills first
    job = await make_job(storage, estimate=100)
    assert paths == ["general", "general"]
    assert job.credit_period_start == clock.current.replace(hour=0)
    assert (await storage.balance(G, U)).allowance_left == 200
    await check_ledger(storage)


async def test_refusals_on_the_common_path_leave_nothing_behind(storage: Storage, paths: list[str]) -> None:
    await storage.update_guild_settings(G, max_active_jobs=2)
    await make_job(storage, estimate=100)
    with pytest.raises(InsufficientCredits) as poor:
        await make_job(storage, estimate=250)
    assert (poor.value.available, poor.value.needed) == (200, 250)
    await make_job(storage, estimate=100)
    with pytest.raises(TooManyActiveJobs) as busy:
        await make_job(storage, estimate=10)
    assert (busy.value.active, busy.value.limit) == (2, 2)
    assert paths == ["general", "refused", "common", "refused"]
    balance = await storage.balance(G, U)
    assert (balance.allowance_left, balance.reserved, balance.active_jobs) == (100, 200, 2)
    assert (await storage.guild_spend(G)).spent == 200  # the refused reservations counted nothing
    await check_ledger(storage)


async def test_the_budget_cap_goes_through_the_general_path(storage: Storage, paths: list[str]) -> None:
    await storage.update_guild_settings(G, budget_credits=150)
    await make_job(storage, estimate=100)
    with pytest.raises(BudgetExceeded):
        await make_job(storage, estimate=100)
    assert paths == ["general", "general"]
    assert (await storage.guild_spend(G)).spent == 100
    await check_ledger(storage)
