"""The worker's learned windows: from the deployment's finished jobs, read once per refresh per kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from generation.completion_windows import REFRESH_SECONDS, CompletionWindows
from storage import Job, JobState
from ulazai.completion import MIN_SAMPLES


class History:
    """A stand-in for the storage's one query: completion times by kind, and who asked."""

    def __init__(self, seconds: dict[tuple[int, str, int, str | None], list[float]]) -> None:
        self.seconds = seconds
        self.asked: list[tuple[int, str, int, str | None]] = []

    async def completion_seconds(
        self, guild_id: int, model: str, duration: int, quality: str | None, *, limit: int
    ) -> list[float]:
        self.asked.append((guild_id, model, duration, quality))
        return self.seconds.get((guild_id, model, duration, quality), [])[:limit]


def job(model: str = "kling-3.0", duration: int = 5, quality: str | None = "std", guild_id: int = 1) -> Job:
    return Job(
        interaction_id=1,
        guild_id=guild_id,
        user_id=1,
        channel_id=1,
        state=JobState.PROCESSING,
        model=model,
        mode="text_to_video",
        prompt="x",
        duration=duration,
        quality=quality,
        estimate_credits=1,
        credit_period_start=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_a_kind_with_history_is_learned_once_per_refresh() -> None:
    now = [0.0]
    history = History({(1, "kling-3.0", 5, "std"): [100.0 + n for n in range(MIN_SAMPLES)]})
    windows = CompletionWindows(history, clock=lambda: now[0])  # type: ignore[arg-type]
    first = await windows.for_job(job())
    assert first is not None
    assert first.source == "learned"
    assert first.polls[0] == 100
    assert await windows.for_job(job()) is first
    assert history.asked == [(1, "kling-3.0", 5, "std")]  # a status poll costs no statement of its own
    now[0] += REFRESH_SECONDS + 1
    await windows.for_job(job())
    assert len(history.asked) == 2  # learned again after the refresh


async def test_too_little_history_means_the_providers_estimate() -> None:
    history = History({(1, "kling-2.6", 10, None): [90.0] * (MIN_SAMPLES - 1)})
    windows = CompletionWindows(history)  # type: ignore[arg-type]
    assert await windows.for_job(job("kling-2.6", 10, None)) is None
    kinds: Any = history.asked
    assert kinds == [(1, "kling-2.6", 10, None)]


async def test_each_server_learns_from_its_own_jobs() -> None:
    history = History({(1, "kling-3.0", 5, "std"): [100.0] * MIN_SAMPLES})
    windows = CompletionWindows(history)  # type: ignore[arg-type]
    assert await windows.for_job(job(guild_id=1)) is not None
    assert await windows.for_job(job(guild_id=2)) is None  # another server's history is not this one's
    assert history.asked == [(1, "kling-3.0", 5, "std"), (2, "kling-3.0", 5, "std")]
