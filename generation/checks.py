"""The rules of a request that are not the provider's: where, whether the bot can post, what, how much.

Each check raises a :class:`~generation.refusals.Refusal` (and returns nothing otherwise). They run after
the provider's rules and before anything is read, uploaded or held, so a refused request costs nothing.
The balance check here is an early answer only, to spare an upload that could not be paid for: the
binding check is the one :meth:`storage.Storage.create_job` makes atomically with the reservation,
and both refuse through the same types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from generation.blocklist import find_blocked_term
from generation.refusals import (
    BotLacksPermissions,
    ChannelNotAllowed,
    MemberBanned,
    NotEnoughCredits,
    PromptBlocked,
    TooManyJobs,
)
from storage import Balance, Ban

#: What the bot needs where a request is made, to post the status card and, later, the video:
#: (permission flag, its name in Discord's settings).
REQUIRED_PERMISSIONS: Final[tuple[tuple[str, str], ...]] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("attach_files", "Attach Files"),
)
#: What the bot needs in a channel it only writes to (review cards, audit lines).
POSTING_PERMISSIONS: Final[tuple[tuple[str, str], ...]] = REQUIRED_PERMISSIONS[:3]
#: In a thread, Discord checks this flag instead of Send Messages.
IN_THREAD: Final[dict[str, tuple[str, str]]] = {
    "send_messages": ("send_messages_in_threads", "Send Messages in Threads"),
}


def check_not_banned(ban: Ban | None) -> None:
    """A banned member gets one refusal and nothing else: first, before any other check or call."""
    if ban is not None:
        raise MemberBanned(ban.reason)


def check_channel(channel_ids: Sequence[int], allowed: Sequence[int]) -> None:
    """``channel_ids``: where the request is made (a thread's own id and its parent's). An empty
    ``allowed`` means every channel is open."""
    if allowed and set(channel_ids).isdisjoint(allowed):
        raise ChannelNotAllowed(allowed)


def missing_permissions(granted: Callable[[str], bool], *, in_thread: bool) -> list[str]:
    """The names of the permissions the bot lacks; ``granted(flag)`` says whether it has one."""
    missing = []
    for flag, label in REQUIRED_PERMISSIONS:
        if in_thread:
            flag, label = IN_THREAD.get(flag, (flag, label))
        if not granted(flag):
            missing.append(label)
    return missing


def missing_posting_permissions(granted: Callable[[str], bool]) -> list[str]:
    """The names of the permissions the bot lacks to post review cards or audit lines in a channel."""
    return [label for flag, label in POSTING_PERMISSIONS if not granted(flag)]


def check_bot_permissions(granted: Callable[[str], bool], *, in_thread: bool) -> None:
    if missing := missing_permissions(granted, in_thread=in_thread):
        raise BotLacksPermissions(missing)


def check_prompt(prompt: str, blocklist: Sequence[str]) -> None:
    if (term := find_blocked_term(prompt, blocklist)) is not None:
        raise PromptBlocked(term)


def check_room(balance: Balance, *, max_active_jobs: int, cost: int) -> None:
    """Whether the member could pay for ``cost`` and start another job now (see the module docstring)."""
    if balance.active_jobs >= max_active_jobs:
        raise TooManyJobs(balance.active_jobs, max_active_jobs)
    if balance.available < cost:
        raise NotEnoughCredits(balance.available, cost, balance.next_refill_at)
