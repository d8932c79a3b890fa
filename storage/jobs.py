"""The job table: the compare-and-set transition, lease claiming, the look-ups the bot makes, and erasure
(a member's words and links, for ``/video forget`` and the retention).

A transition is ``UPDATE jobs SET state = :new ... WHERE id = :id AND state = :seen`` (plus
``AND lease_owner = :me`` for a worker), so two actors racing for the same job - a member
cancelling while a worker submits, two workers after a lease expired - can never both win. Whoever
loses gets :class:`~storage.errors.StaleState` or :class:`~storage.errors.LeaseLost`.

Leases make a job the business of one worker at a time across processes: a claim takes due, unleased
(or expired) jobs with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` makes
the claim exclusive anyway) and stamps ``lease_owner`` and ``lease_expires_at``. The owner renews
while it works; every write it makes afterwards is fenced by ``lease_owner = :me``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.errors import InvalidTransition, JobNotFound, LeaseLost, StaleState
from storage.models import GuildSettings, Job, table
from storage.states import TERMINAL_STATES, JobOrigin, JobState, can_transition

#: What an erased job's prompt reads.
ERASED_PROMPT: Final = "[erased]"


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything the member asked for, stored as plain columns on the job."""

    model: str
    mode: str
    prompt: str
    duration: int
    quality: str | None = None
    aspect_ratio: str | None = None
    sound: bool = False
    multi_shot: bool = False
    directory_optin: bool = False
    image_urls: Sequence[str] = ()
    start_frame_url: str | None = None
    end_frame_url: str | None = None
    parent_job_id: int | None = None
    origin: JobOrigin | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "prompt": self.prompt,
            "duration": self.duration,
            "quality": self.quality,
            "aspect_ratio": self.aspect_ratio,
            "sound": self.sound,
            "multi_shot": self.multi_shot,
            "directory_optin": self.directory_optin,
            "image_urls": list(self.image_urls),
            "start_frame_url": self.start_frame_url,
            "end_frame_url": self.end_frame_url,
            "parent_job_id": self.parent_job_id,
            "origin": self.origin,
        }


async def load(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def move(
    session: AsyncSession,
    job: Job,
    target: JobState,
    *,
    owner: str | None,
    now: datetime,
    values: dict[str, Any] | None = None,
    where: Iterable[sa.ColumnElement[bool]] = (),
) -> Job:
    """Compare-and-set ``job`` from the state it was read in to ``target``; returns the moved job.

    ``owner`` fences the write with the lease (``None``: no lease needed, e.g. a moderator). Ending
    states drop the lease. Raises :class:`InvalidTransition` for a move the table forbids,
    :class:`StaleState` when the job moved meanwhile, :class:`LeaseLost` when the lease is gone.
    """
    assert job.id is not None
    seen = job.state
    if not can_transition(seen, target):
        raise InvalidTransition(job_id=job.id, current=seen, target=target)
    if owner is not None and job.lease_owner != owner:
        raise LeaseLost(job_id=job.id, owner=owner, holder=job.lease_owner)
    changes: dict[str, Any] = {"state": target, "updated_at": now, **(values or {})}
    if target in TERMINAL_STATES:
        changes.update(lease_owner=None, lease_expires_at=None, next_attempt_at=None, ended_at=now)
    conditions = [col(Job.id) == job.id, col(Job.state) == seen, *where]
    if owner is not None:
        conditions.append(col(Job.lease_owner) == owner)
    result = await session.execute(
        sa.update(Job)
        .where(*conditions)
        .values(**changes)
        .returning(Job)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    moved = result.scalars().one_or_none()
    if moved is not None:
        return moved
    current = await load(session, job.id)
    if current.state != seen:
        raise StaleState(job_id=job.id, current=current.state, target=target)
    raise LeaseLost(job_id=job.id, owner=owner or "", holder=current.lease_owner)


def lease_free(now: datetime) -> sa.ColumnElement[bool]:
    """Nobody holds the job: never leased, or the lease ran out."""
    return sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) <= now)


def due(now: datetime) -> sa.ColumnElement[bool]:
    """The job's next attempt (submit, poll) is not in the future."""
    return sa.or_(col(Job.next_attempt_at).is_(None), col(Job.next_attempt_at) <= now)


async def take_leases(
    session: AsyncSession,
    ids: Sequence[int | None],  # the id column's type (a new model's id is None until inserted)
    owner: str,
    *,
    states: Iterable[JobState],
    lease_until: datetime,
    now: datetime,
) -> list[Job]:
    """Stamp ``owner``'s lease on the jobs ``ids`` (picked ``FOR UPDATE SKIP LOCKED`` by the caller)
    that are still free and in ``states``; returns them in the order of ``ids``."""
    if not ids:
        return []
    result = await session.execute(
        sa.update(Job)
        .where(col(Job.id).in_(ids), col(Job.state).in_(list(states)), lease_free(now))
        .values(lease_owner=owner, lease_expires_at=lease_until, updated_at=now)
        .returning(Job)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    by_id = {job.id: job for job in result.scalars().all()}
    return [by_id[job_id] for job_id in ids if job_id in by_id]


async def claim(
    session: AsyncSession,
    owner: str,
    states: Iterable[JobState],
    *,
    limit: int,
    lease_until: datetime,
    now: datetime,
) -> list[Job]:
    """Lease up to ``limit`` due jobs in ``states`` that nobody holds, oldest first."""
    wanted = list(states)
    ids = (
        (
            await session.execute(
                sa.select(col(Job.id))
                .where(col(Job.state).in_(wanted), lease_free(now), due(now))
                .order_by(col(Job.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    return await take_leases(session, ids, owner, states=wanted, lease_until=lease_until, now=now)


async def fenced_update(session: AsyncSession, job_id: int, owner: str, values: dict[str, Any]) -> Job:
    """Update a job only while ``owner`` holds its lease, or raise :class:`LeaseLost`."""
    result = await session.execute(
        sa.update(Job)
        .where(col(Job.id) == job_id, col(Job.lease_owner) == owner)
        .values(**values)
        .returning(Job)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    job = result.scalars().one_or_none()
    if job is None:
        current = await load(session, job_id)
        raise LeaseLost(job_id=job_id, owner=owner, holder=current.lease_owner)
    return job


async def update_unfenced(session: AsyncSession, job_id: int, values: dict[str, Any]) -> Job:
    result = await session.execute(
        sa.update(Job)
        .where(col(Job.id) == job_id)
        .values(**values)
        .returning(Job)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    job = result.scalars().one_or_none()
    if job is None:
        raise JobNotFound(job_id)
    return job


async def by_interaction(session: AsyncSession, interaction_id: int) -> Job | None:
    """The job a Discord interaction created, if any (the interaction id is unique)."""
    result = await session.execute(sa.select(Job).where(col(Job.interaction_id) == interaction_id))
    return result.scalars().one_or_none()


async def of_member(
    session: AsyncSession, guild_id: int, user_id: int, *, limit: int, states: Iterable[JobState] | None
) -> list[Job]:
    """A member's newest jobs first, optionally only those in ``states``."""
    query = sa.select(Job).where(col(Job.guild_id) == guild_id, col(Job.user_id) == user_id)
    if states is not None:
        query = query.where(col(Job.state).in_(list(states)))
    result = await session.execute(query.order_by(col(Job.id).desc()).limit(limit))
    return list(result.scalars().all())


async def unfinished_counts(session: AsyncSession, guild_id: int) -> dict[JobState, int]:
    """How many of one server's jobs are in each state that has not ended yet."""
    rows = await session.execute(
        sa.select(col(Job.state), sa.func.count())
        .where(col(Job.guild_id) == guild_id, col(Job.state).not_in(list(TERMINAL_STATES)))
        .group_by(col(Job.state))
    )
    return {JobState(state): int(count) for state, count in rows.all()}


async def abandoned_submissions(session: AsyncSession, now: datetime) -> list[Job]:
    """``submitting`` jobs whose lease ran out: generate calls a dead process left in flight.

    Locked (``FOR UPDATE SKIP LOCKED``), oldest first, for the caller to move in its transaction.
    """
    result = await session.execute(
        sa.select(Job)
        .where(col(Job.state) == JobState.SUBMITTING, lease_free(now))
        .order_by(col(Job.id))
        .with_for_update(skip_locked=True)
    )
    return list(result.scalars().all())


# -- issue 12: how long this server's videos really take -------------------------------------------


async def generation_seconds(
    session: AsyncSession, guild_id: int, model: str, duration: int, *, limit: int
) -> list[float]:
    """How long the server's ``limit`` most recent finished videos of this model and duration took,
    newest first: from the provider accepting the job to the bot having the video
    (``completed_at - submitted_at``; a job that failed after completion counts too: it was made)."""
    rows = await session.execute(
        sa.select(col(Job.submitted_at), col(Job.completed_at))
        .where(
            col(Job.guild_id) == guild_id,
            col(Job.model) == model,
            col(Job.duration) == duration,
            col(Job.completed_at).is_not(None),
            col(Job.submitted_at).is_not(None),
        )
        .order_by(col(Job.completed_at).desc())
        .limit(limit)
    )
    return [max(0.0, (done - started).total_seconds()) for started, done in rows.all()]


async def in_flight(session: AsyncSession, *, limit: int) -> list[Job]:
    """Jobs being submitted or generated right now, across every server (they hold the worker's
    generation slots), oldest first."""
    result = await session.execute(
        sa.select(Job)
        .where(col(Job.state).in_([JobState.SUBMITTING, JobState.PROCESSING]))
        .order_by(col(Job.id))
        .limit(limit)
    )
    return list(result.scalars().all())


async def unfinished_of_guild(session: AsyncSession, guild_id: int, *, limit: int) -> list[Job]:
    """One server's jobs that have not ended, oldest first (for its moderators)."""
    result = await session.execute(
        sa.select(Job)
        .where(col(Job.guild_id) == guild_id, col(Job.state).not_in(list(TERMINAL_STATES)))
        .order_by(col(Job.id))
        .limit(limit)
    )
    return list(result.scalars().all())


# -- erasure (a member's request to be forgotten, and the server's retention) -------------------------


def erasure(now: datetime) -> dict[str, Any]:
    """The columns that hold a member's words and links, erased. Amounts and states stay."""
    return {
        "prompt": ERASED_PROMPT,
        "image_urls": [],
        "start_frame_url": None,
        "end_frame_url": None,
        "video_url": None,
        "delivery_notes": None,
        "erased_at": now,
        "updated_at": now,
    }


async def erase(session: AsyncSession, ids: Sequence[int | None], now: datetime) -> list[Job]:
    """Erase the jobs ``ids`` that are not erased yet; returns them, erased, oldest first."""
    if not ids:
        return []
    result = await session.execute(
        sa.update(Job)
        .where(col(Job.id).in_(ids), col(Job.erased_at).is_(None))
        .values(**erasure(now))
        .returning(Job)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    return sorted(result.scalars().all(), key=lambda job: job.id or 0)


def _of(guild_id: int, user_id: int) -> list[sa.ColumnElement[bool]]:
    return [col(Job.guild_id) == guild_id, col(Job.user_id) == user_id, col(Job.erased_at).is_(None)]


async def flag_for_erasure(session: AsyncSession, guild_id: int, user_id: int) -> None:
    """Mark every not yet erased job of the member: each is erased as soon as it ends (see
    :func:`storage.transitions.apply`), even one that ends while the rest is being erased."""
    await session.execute(
        sa.update(Job)
        .where(*_of(guild_id, user_id), col(Job.erase_requested).is_(False))
        .values(erase_requested=True)
    )


async def of_member_unerased(
    session: AsyncSession, guild_id: int, user_id: int, states: Iterable[JobState], *, limit: int
) -> list[Job]:
    """Up to ``limit`` of the member's jobs in ``states`` that are not erased yet, oldest first, locked
    (waiting for a worker's claim to commit, not skipping the job: it must be seen)."""
    result = await session.execute(
        sa.select(Job)
        .where(*_of(guild_id, user_id), col(Job.state).in_(list(states)))
        .order_by(col(Job.id))
        .limit(limit)
        .with_for_update()
    )
    return list(result.scalars().all())


async def count_of_member_unerased(
    session: AsyncSession, guild_id: int, user_id: int, states: Iterable[JobState]
) -> int:
    result = await session.execute(
        sa.select(sa.func.count()).where(*_of(guild_id, user_id), col(Job.state).in_(list(states)))
    )
    return int(result.scalar_one())


async def past_retention(session: AsyncSession, now: datetime, *, limit: int) -> list[int]:
    """Up to ``limit`` ids of jobs not erased yet that ended longer ago than their server's retention.

    One query per retention value in use (there are few: most servers keep the default), each an index
    range on ``(erased_at, ended_at)``, so the cost follows the jobs still holding words, not all jobs.
    """
    days = (
        await session.execute(
            sa.select(sa.distinct(col(GuildSettings.retention_days))).where(
                col(GuildSettings.retention_days) > 0
            )
        )
    ).scalars()
    ids: list[int] = []
    for kept in sorted(days):
        found = await session.execute(
            sa.select(col(Job.id))
            .join(GuildSettings, col(GuildSettings.guild_id) == col(Job.guild_id))
            .where(
                col(GuildSettings.retention_days) == kept,
                col(Job.erased_at).is_(None),
                col(Job.ended_at) < now - timedelta(days=kept),
            )
            .order_by(col(Job.ended_at))
            .limit(limit - len(ids))
        )
        ids.extend(job_id for job_id in found.scalars() if job_id is not None)
        if len(ids) >= limit:
            break
    return ids


async def created_between(session: AsyncSession, guild_id: int, start: datetime, end: datetime) -> list[Job]:
    """One server's jobs created in ``[start, end)``, oldest first (the usage report)."""
    result = await session.execute(
        sa.select(Job)
        .where(col(Job.guild_id) == guild_id, col(Job.created_at) >= start, col(Job.created_at) < end)
        .order_by(col(Job.id))
    )
    return list(result.scalars().all())


async def state_counts(session: AsyncSession, states: Iterable[JobState]) -> dict[JobState, int]:
    """How many jobs of the whole bot are in each of ``states`` (the operator's gauges)."""
    wanted = list(states)
    rows = await session.execute(
        sa.select(col(Job.state), sa.func.count()).where(col(Job.state).in_(wanted)).group_by(col(Job.state))
    )
    counts = dict.fromkeys(wanted, 0)
    counts.update({JobState(state): int(count) for state, count in rows.all()})
    return counts


async def guilds_with(session: AsyncSession, states: Iterable[JobState]) -> list[int]:
    """The servers that have jobs in ``states``."""
    rows = await session.execute(
        sa.select(col(Job.guild_id)).where(col(Job.state).in_(list(states))).distinct()
    )
    return sorted(int(guild_id) for guild_id in rows.scalars().all())


async def of_member_for_update(
    session: AsyncSession, guild_id: int, user_id: int, states: Iterable[JobState]
) -> list[Job]:
    """A member's jobs in ``states``, oldest first, locked for the caller to move in its transaction."""
    result = await session.execute(
        sa.select(Job)
        .where(col(Job.guild_id) == guild_id, col(Job.user_id) == user_id, col(Job.state).in_(list(states)))
        .order_by(col(Job.id))
        .with_for_update()
    )
    return list(result.scalars().all())


async def mark_video_deleted(session: AsyncSession, job_id: int, message_id: int, now: datetime) -> bool:
    """Record that the video posted as ``message_id`` is gone (only the first deletion counts);
    ``True`` when this call recorded it."""
    result = await session.execute(
        sa.update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.posted_message_id) == message_id,
            col(Job.posted_deleted_at).is_(None),
        )
        .values(posted_deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def set_messages(connection: Connection, change: tuple[int, dict[str, Any]]) -> dict[str, Any] | None:
    """``UPDATE`` one job's message ids (``change``: its id and the new values) and return the whole
    row (``None``: no such job), in a transaction of its own; synchronous, for
    :func:`storage.database.run_on_connection` (every new request records its status card)."""
    job_id, values = change
    jobs = table(Job)
    with connection.begin():
        row = (
            connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**values).returning(*jobs.c))
            .mappings()
            .one_or_none()
        )
    return None if row is None else dict(row)


async def completion_seconds(
    session: AsyncSession, guild_id: int, model: str, duration: int, quality: str | None, *, limit: int
) -> list[float]:
    """How long the server's newest ``limit`` finished jobs like this took, submission to completion, in
    seconds (read along ``ix_jobs_guild_id_model_duration_completed_at``).

    A video was finished between the last "not yet" (``polled_at``) and the answer that said it was
    ready (``completed_at``): the middle of the two is the best guess, without the polling's own delay.
    A job with no "not yet" on record counts as finished when it was seen done.
    """
    same_quality = col(Job.quality).is_(None) if quality is None else col(Job.quality) == quality
    rows = await session.execute(
        sa.select(col(Job.submitted_at), col(Job.polled_at), col(Job.completed_at))
        .where(
            col(Job.guild_id) == guild_id,
            col(Job.model) == model,
            col(Job.duration) == duration,
            same_quality,
            col(Job.completed_at).is_not(None),
            col(Job.submitted_at).is_not(None),
        )
        .order_by(col(Job.completed_at).desc())
        .limit(limit)
    )
    seconds = []
    for submitted, polled, completed in rows.all():
        if polled is None or polled < submitted:  # no "not yet" on record (jobs done before it was kept)
            seconds.append((completed - submitted).total_seconds())
        else:
            seconds.append(((polled - submitted) + (completed - polled) / 2).total_seconds())
    return seconds
