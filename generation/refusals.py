"""Why a request is refused, as typed values: the rules decide here, the cogs choose the words.

Each refusal means "nothing was charged, nothing was sent"; the cog answers it with one ephemeral
sentence that says what to change (``cogs.common.user_message_for``). A refusal carries the facts the
sentence needs (numbers, times, channel ids), never Discord markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class Refusal(Exception):
    """A request the bot will not carry out; ``message`` is a plain sentence for the member."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChannelNotAllowed(Refusal):
    """The server allows videos only in ``allowed`` (channel ids), and this is not one of them."""

    def __init__(self, allowed: Sequence[int]) -> None:
        super().__init__("Videos can't be made in this channel.")
        self.allowed = list(allowed)


class BotLacksPermissions(Refusal):
    """The bot could not post the card or the video here: ``missing`` are the permissions' names."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(f"I need the {', '.join(missing)} permission(s) here.")
        self.missing = list(missing)


class PromptBlocked(Refusal):
    """The prompt matches ``term`` of the server's blocklist (the member is never told which)."""

    def __init__(self, term: str) -> None:
        super().__init__("Your prompt contains something this server does not allow.")
        self.term = term


class TooManyJobs(Refusal):
    """The member already has ``active`` unfinished videos and the server allows ``limit``."""

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(f"{active} videos in progress; the limit is {limit}.")
        self.active = active
        self.limit = limit


class NotEnoughCredits(Refusal):
    """The video costs ``needed`` and the member has ``available``; the allowance refills at ``next_refill``."""

    def __init__(self, available: int, needed: int, next_refill: datetime) -> None:
        super().__init__(f"This video costs {needed} credits and you have {available}.")
        self.available = available
        self.needed = needed
        self.next_refill = next_refill


class BudgetSpent(Refusal):
    """The server's budget for the period is used up (``spent`` of ``budget``) until ``resets_at``."""

    def __init__(self, spent: int, budget: int, resets_at: datetime) -> None:
        super().__init__(f"This server has used its video budget ({spent} of {budget} credits).")
        self.spent = spent
        self.budget = budget
        self.resets_at = resets_at


class AlreadyReceived(Refusal):
    """The same request (the same interaction) was already taken: a retried delivery of one command."""

    def __init__(self) -> None:
        super().__init__("This request was already received.")


# -- issue 12: Continue, Remix, Animate with Kling ---------------------------------------------------


class EmptyPrompt(Refusal):
    """The modal's prompt was left empty (or only spaces)."""

    def __init__(self) -> None:
        super().__init__("The prompt is empty.")


class PromptTooLong(Refusal):
    """The modal's prompt has ``length`` characters and at most ``limit`` are taken."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"The prompt is {length} characters; the limit is {limit}.")
        self.length = length
        self.limit = limit


class BadDuration(Refusal):
    """The modal's duration ``given`` is not a whole number of seconds from ``low`` to ``high``."""

    def __init__(self, given: str, low: int, high: int) -> None:
        super().__init__(f"The duration must be whole seconds from {low} to {high}.")
        self.given = given
        self.low = low
        self.high = high


class NoLastFrame(Refusal):
    """The video to continue could not be read (its message and the provider's link are both gone)."""

    def __init__(self) -> None:
        super().__init__("I couldn't read that video any more.")


class NoImage(Refusal):
    """The message holds no JPEG, PNG or WebP attachment (``gone``: it had one, which is no longer there)."""

    def __init__(self, *, gone: bool = False) -> None:
        super().__init__("That message has no image to animate.")
        self.gone = gone


class ImageUnreadable(Refusal):
    """Discord no longer lets the bot read the image the menu was used on (a fetched message comes
    without other members' attachments unless the bot has the Message Content intent)."""

    def __init__(self) -> None:
        super().__init__("I can no longer read that image.")


class MemberBanned(Refusal):
    """An admin stopped this member from making videos in this server; ``reason`` is theirs, if given."""

    def __init__(self, reason: str | None) -> None:
        super().__init__("You can't make videos in this server.")
        self.reason = reason
