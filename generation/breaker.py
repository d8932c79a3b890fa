"""The provider circuit breaker: when the operator's UlazAI account cannot make videos, the line pauses.

A 401 (the key is refused) or 402 (the account cannot pay) is about the account, not the job: every
job after it would get the same answer, and failing them one by one would refund and disappoint every
member in the queue. So the first such answer, from a generate or an upload, pauses submissions for
the whole bot (the state lives in the database, :class:`storage.AccountState`, so every process
sharing it pauses too); the job that met it goes back to the queue, its credits still held. The rules:

* **While paused** nothing is submitted except one *probe* per interval across every process: the
  next queued member's job itself, never a dummy request that would cost credits. ``/kling-admin
  resume`` makes the next probe due at once.
* **The first accepted generate resumes** the line for everyone (a probe, or a job already on its way
  when the pause began), with no admin command needed.
* Anything else a probe meets (a 400, a 429, a timeout) is that job's outcome as usual
  (:mod:`generation.outcomes`) and proves nothing about the account: the line stays paused.
* Each server with jobs waiting is told once when the line pauses (why, and what to do) and once
  when it resumes, never once per job.

Everything here is a plain decision over plain values; the worker (:mod:`generation.worker`) and the
request flow carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from generation.outcomes import Pause, Started, SubmitOutcome
from storage import AccountState
from ulazai.errors import AuthenticationError, InsufficientCreditsError, UlazAIError

#: How often a paused line sends a probe by default (``PROVIDER_PAUSE_PROBE_SECONDS``).
DEFAULT_PROBE_SECONDS: Final = 60.0


class Trouble(StrEnum):
    """Why the account cannot make videos, as the provider said it."""

    OUT_OF_CREDITS = "out_of_credits"  # 402
    KEY_REFUSED = "key_refused"  # 401


def trouble_of(status: int | None) -> Trouble:
    return Trouble.KEY_REFUSED if status == 401 else Trouble.OUT_OF_CREDITS


def pause_for(error: UlazAIError) -> Pause | None:
    """The pause an upload's (or any call's) error calls for, or ``None`` when it is not the account's."""
    if isinstance(error, InsufficientCreditsError):
        return Pause(error.status or 402, error.message)
    if isinstance(error, AuthenticationError):
        return Pause(error.status or 401, error.message)
    return None


def may_submit(account: AccountState) -> bool:
    """Whether queued jobs may be claimed as usual."""
    return not account.paused


def probe_due(account: AccountState, now: datetime, interval: timedelta) -> bool:
    """Whether a paused line may send its next probe now (the database's compare-and-set decides which
    process sends it; this spares the others the write)."""
    if not account.paused:
        return False
    return account.last_probe_at is None or now - account.last_probe_at >= interval


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one generate outcome does to the line: ``pause`` it, ``resume`` it, or neither."""

    pause: Pause | None = None
    resume: bool = False


def after_generate(outcome: SubmitOutcome, account: AccountState) -> Verdict:
    """What a generate outcome does to the line, given the state last read (``account``)."""
    if isinstance(outcome, Pause):
        return Verdict(pause=outcome)
    if isinstance(outcome, Started) and account.paused:
        return Verdict(resume=True)
    return Verdict()
