"""The request rules that are not the provider's: channel, permissions, blocklist, room to spend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from generation import checks
from generation.refusals import (
    BotLacksPermissions,
    ChannelNotAllowed,
    NotEnoughCredits,
    PromptBlocked,
    TooManyJobs,
)
from storage import Balance, Period

REFILL = datetime(2026, 12, 7, tzinfo=UTC)


def balance(available: int, active: int) -> Balance:
    return Balance(
        guild_id=1,
        user_id=2,
        allowance_left=available,
        allowance_total=300,
        bonus=0,
        reserved=0,
        active_jobs=active,
        period=Period.WEEKLY,
        period_start=datetime(2026, 11, 30, tzinfo=UTC),
        next_refill_at=REFILL,
    )


def test_every_channel_is_open_until_the_server_names_some() -> None:
    checks.check_channel([5], [])
    checks.check_channel([5], [5, 6])
    checks.check_channel([9, 5], [5])  # a thread whose parent is allowed
    with pytest.raises(ChannelNotAllowed) as refused:
        checks.check_channel([9], [5, 6])
    assert refused.value.allowed == [5, 6]


def test_missing_permissions_are_named_and_threads_need_their_own_send_permission() -> None:
    everything = {flag for flag, _ in checks.REQUIRED_PERMISSIONS} | {"send_messages_in_threads"}
    checks.check_bot_permissions(lambda flag: flag in everything, in_thread=False)
    checks.check_bot_permissions(lambda flag: flag in everything - {"send_messages"}, in_thread=True)
    with pytest.raises(BotLacksPermissions) as refused:
        checks.check_bot_permissions(
            lambda flag: flag in everything - {"send_messages_in_threads"}, in_thread=True
        )
    assert refused.value.missing == ["Send Messages in Threads"]
    with pytest.raises(BotLacksPermissions) as refused:
        checks.check_bot_permissions(lambda flag: flag == "view_channel", in_thread=False)
    assert refused.value.missing == ["Send Messages", "Embed Links", "Attach Files"]


def test_a_blocked_prompt_is_refused_with_the_term_kept_for_the_audit_line() -> None:
    checks.check_prompt("a red box", ["fox"])
    with pytest.raises(PromptBlocked) as refused:
        checks.check_prompt("a red FOX", ["wolf", "fox"])
    assert refused.value.term == "fox"
    assert "fox" not in refused.value.message


def test_room_to_spend_checks_active_jobs_before_credits() -> None:
    checks.check_room(balance(100, 1), max_active_jobs=2, cost=100)
    with pytest.raises(TooManyJobs) as too_many:
        checks.check_room(balance(0, 2), max_active_jobs=2, cost=100)
    assert (too_many.value.active, too_many.value.limit) == (2, 2)
    with pytest.raises(NotEnoughCredits) as short:
        checks.check_room(balance(99, 0), max_active_jobs=2, cost=100)
    assert (short.value.available, short.value.needed, short.value.next_refill) == (99, 100, REFILL)
