"""How the server's settings read: the ``/kling-admin settings`` embed, the sentences the admin
commands answer with (allowances, budgets, channels, the blocklist, jobs in flight), and the choices
the admin commands offer."""

from __future__ import annotations

import discord
from discord import app_commands

from cogs import cards, trust_settings
from storage import BudgetSnapshot, GrantResult, GuildSettings, JobState, Period
from ulazai.pricing import DIRECTORY_DISCOUNT

ALLOWANCE_PERIODS = [
    app_commands.Choice(name="Daily (refills at 00:00 UTC)", value=Period.DAILY.value),
    app_commands.Choice(name="Weekly (refills on Monday, 00:00 UTC)", value=Period.WEEKLY.value),
    app_commands.Choice(name="Monthly (refills on the 1st, 00:00 UTC)", value=Period.MONTHLY.value),
]
BUDGET_PERIODS = [
    app_commands.Choice(name="Daily (starts over at 00:00 UTC)", value=Period.DAILY.value),
    app_commands.Choice(name="Monthly (starts over on the 1st, 00:00 UTC)", value=Period.MONTHLY.value),
]
BLOCKLIST_ACTIONS = [
    app_commands.Choice(name="Add a term", value="add"),
    app_commands.Choice(name="Remove a term", value="remove"),
    app_commands.Choice(name="List the terms", value="list"),
]
#: How a period reads in a sentence ("300 credits a week").
EVERY: dict[str, str] = {"daily": "a day", "weekly": "a week", "monthly": "a month"}
THIS: dict[str, str] = {"daily": "today", "weekly": "this week", "monthly": "this month"}
#: How the unfinished states read on the settings embed, in the order a job goes through them.
IN_FLIGHT_LABELS: dict[JobState, str] = {
    JobState.PENDING_REVIEW: "waiting for review",
    JobState.QUEUED: "queued",
    JobState.SUBMITTING: "starting",
    JobState.PROCESSING: "generating",
    JobState.COMPLETED: "being posted",
}


def channel_list(channel_ids: list[int]) -> str:
    return ", ".join(f"<#{channel_id}>" for channel_id in channel_ids)


def where_videos_may_be_made(allowed: list[int]) -> str:
    if not allowed:
        return "Videos can be made in every channel."
    return f"Videos can be made only in {channel_list(allowed)}."


def allowance_text(settings: GuildSettings) -> str:
    lines = [f"{settings.allowance_credits:,} credits {EVERY[settings.allowance_period]} per member"]
    for role_id, credits in sorted(settings.role_allowances.items(), key=lambda item: -item[1]):
        lines.append(f"<@&{role_id}>: {credits:,} credits")
    if settings.role_allowances:
        lines.append("-# A member gets the largest allowance that applies.")
    return "\n".join(lines)


def budget_text(snapshot: BudgetSnapshot) -> str:
    period = snapshot.period.value
    spent = f"{snapshot.spent:,} credits spent {THIS[period]}"
    if snapshot.budget is None:
        return f"No cap ({spent})"
    return (
        f"{snapshot.budget:,} credits {EVERY[period]}: {spent}, "
        f"starts over <t:{int(snapshot.resets_at.timestamp())}:R>"
    )


def in_flight_text(counts: dict[JobState, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "None"
    parts = [f"{counts[state]} {label}" for state, label in IN_FLIGHT_LABELS.items() if counts.get(state)]
    return f"{total}: {', '.join(parts)}"


def blocklist_text(terms: list[str], limit: int = 1024) -> str:
    if not terms:
        return "Empty"
    text = ", ".join(f"“{discord.utils.escape_markdown(term)}”" for term in terms)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def settings_embed(
    settings: GuildSettings,
    spend: BudgetSnapshot,
    counts: dict[JobState, int],
    more: list[tuple[str, str]] | None = None,
) -> discord.Embed:
    """Everything ``/kling-admin`` sets, plus this period's spend and the jobs not finished yet
    (``more``: further fields, each ``(name, value)``)."""
    embed = discord.Embed(title="Video bot settings", colour=cards.BRAND_COLOUR)
    channels = channel_list(settings.allowed_channel_ids) if settings.allowed_channel_ids else "Every channel"
    embed.add_field(name="Channels", value=channels, inline=False)
    review = f"<#{settings.review_channel_id}>" if settings.review_channel_id else "Off"
    embed.add_field(name="Review", value=review, inline=True)
    audit_log = f"<#{settings.audit_channel_id}>" if settings.audit_channel_id else "Off"
    embed.add_field(name="Audit log", value=audit_log, inline=True)
    directory = f"On ({DIRECTORY_DISCOUNT} credits off, published)" if settings.directory_discount else "Off"
    embed.add_field(name="Prompt Directory", value=directory, inline=True)
    embed.add_field(name="Allowance", value=allowance_text(settings)[:1024], inline=False)
    embed.add_field(name="Server budget", value=budget_text(spend), inline=False)
    embed.add_field(name="Jobs in flight", value=in_flight_text(counts), inline=True)
    embed.add_field(
        name="Per member",
        value=f"{settings.max_active_jobs} at a time · default model {cards.model_label(settings.default_model)}",
        inline=True,
    )
    embed.add_field(name="Price confirmation", value=trust_settings.confirm_text(settings), inline=True)
    embed.add_field(name="Retention", value=trust_settings.retention_text(settings), inline=True)
    embed.add_field(
        name=f"Blocklist ({len(settings.blocklist_terms)})",
        value=blocklist_text(settings.blocklist_terms),
        inline=False,
    )
    for name, value in more or []:
        embed.add_field(name=name, value=value, inline=False)
    return embed


def grant_texts(member: str, result: GrantResult, *, asked: int) -> tuple[str, str | None]:
    """The admin's answer to a grant, and its audit line (``None`` when nothing moved)."""
    available = f"They can spend {result.balance.available:,} credits now."
    if result.granted > 0:
        return (
            f"Gave {member} {result.granted:,} bonus credits. {available}",
            f"granted {result.granted:,} bonus credits to {member}. {available}",
        )
    if result.granted == 0:
        return f"{member} has no bonus credits, so nothing was taken (allowances are never taken).", None
    taken = -result.granted
    short = " (all they had)" if taken < -asked else ""
    return (
        f"Took {taken:,} bonus credits from {member}{short}. {available}",
        f"took {taken:,} bonus credits from {member}{short}. {available}",
    )
