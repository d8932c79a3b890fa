"""``/kling-admin usage``: where the server's credits went, as an embed, a chart and a CSV.

The figures are :mod:`generation.usage`'s. The chart (matplotlib, Agg backend) and the CSV are made in a
worker thread (``asyncio.to_thread``) under :data:`RENDER_TIMEOUT`, never on the event loop, so
interactions keep being acknowledged while it renders. A thread rather than a process: one render is a
fraction of a second of work over a few dozen numbers, while a process would cost a second to start
and tens of megabytes for its own matplotlib; matplotlib (and numpy) is imported in that thread on the
first report, so a bot nobody asks for a report never loads it. A thread cannot be killed: the time
limit ends the wait, and the answer then goes without the chart while the thread finishes on its own.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import discord
from discord import app_commands

from cogs import cards
from cogs.common import NO_MENTIONS, plural, when
from cogs.settings_card import EVERY, THIS
from generation import usage
from generation.usage import UsagePeriod, Window
from storage import Job, Period

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: How long the report waits for its chart.
RENDER_TIMEOUT: Final = 30.0
PERIOD_CHOICES = [
    app_commands.Choice(name="The last 24 hours", value=UsagePeriod.DAY.value),
    app_commands.Choice(name="The last 7 days (default)", value=UsagePeriod.WEEK.value),
    app_commands.Choice(name="The last 30 days", value=UsagePeriod.MONTH.value),
]
SPAN: Final[dict[UsagePeriod, str]] = {
    UsagePeriod.DAY: "the last 24 hours",
    UsagePeriod.WEEK: "the last 7 days",
    UsagePeriod.MONTH: "the last 30 days",
}


def budget_label(budget: int, period: Period, win: Window, pace: float) -> str:
    every = "an hour" if win.hourly else "a day"
    if period is Period.DAILY and not win.hourly:
        return f"Budget: {budget:,} credits a day"
    return f"Budget: {budget:,} credits {EVERY[period.value]} (≈{pace:,.0f} {every})"


def render_files(
    win: Window,
    per_model: dict[str, list[int]],
    jobs: Sequence[Job],
    *,
    title: str,
    pace: float | None,
    pace_label: str | None,
) -> tuple[bytes, bytes]:
    """The chart's PNG and the CSV. Blocking: runs in a worker thread."""
    from generation import usage_chart  # imported here, in the thread: matplotlib is heavy to load

    png = usage_chart.render(
        win.buckets, per_model, title=title, hourly=win.hourly, budget_pace=pace, budget_label=pace_label
    )
    return png, usage.csv_text(jobs).encode("utf-8")


def report_embed(summary: usage.Summary, win: Window, budget: str | None) -> discord.Embed:
    embed = discord.Embed(
        title=f"Video usage: {SPAN[win.period]}",
        description=f"{when(win.start, 'f')} to {when(win.end, 'f')} · {plural(summary.jobs, 'request')}",
        colour=cards.BRAND_COLOUR,
    )
    embed.add_field(name="Credits spent", value=f"{summary.spent:,}", inline=True)
    embed.add_field(name="Videos delivered", value=f"{summary.delivered:,}", inline=True)
    embed.add_field(name="Failed or lost", value=f"{summary.failed:,}", inline=True)
    embed.add_field(name="Credits refunded", value=f"{summary.refunded:,}", inline=True)
    if budget is not None:
        embed.add_field(name="Server budget left", value=budget, inline=True)
    top = "\n".join(
        f"{place}. <@{user_id}>: {credits:,} credits"
        for place, (user_id, credits) in enumerate(summary.top_members, start=1)
    )
    embed.add_field(name="Top members", value=top or "Nobody spent credits", inline=False)
    models = "\n".join(
        f"{cards.model_label(model)}: {plural(videos, 'request')}, {credits:,} credits"
        for model, (videos, credits) in summary.by_model.items()
    )
    embed.add_field(name="By model", value=models or "No requests", inline=False)
    return embed


async def answer(interaction: discord.Interaction[Any], period: str) -> None:
    """The whole report, privately, for the admin who asked (already deferred)."""
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    guild_id = interaction.guild_id
    win = usage.window(UsagePeriod(period), bot.storage.now())
    jobs = await bot.storage.jobs_created_between(guild_id, win.start, win.end)
    settings = await bot.storage.get_guild_settings(guild_id)
    spend = await bot.storage.guild_spend(guild_id)
    summary = usage.summarise(jobs)
    budget_period = Period(settings.budget_period)
    pace = usage.budget_pace(settings.budget_credits, budget_period, win)
    pace_label = None
    budget = None
    if settings.budget_credits is not None and pace is not None:
        pace_label = budget_label(settings.budget_credits, budget_period, win, pace)
        budget = (
            f"{spend.remaining or 0:,} of {settings.budget_credits:,} credits {THIS[budget_period.value]}"
        )
    title = f"Credits per {'hour' if win.hourly else 'day'} by model, {SPAN[win.period]}"
    embed = report_embed(summary, win, budget)
    files = []
    try:
        png, csv_bytes = await asyncio.wait_for(
            asyncio.to_thread(
                render_files,
                win,
                usage.series(jobs, win),
                jobs,
                title=title,
                pace=pace,
                pace_label=pace_label,
            ),
            RENDER_TIMEOUT,
        )
        files.append(discord.File(io.BytesIO(png), filename="usage.png"))
        embed.set_image(url="attachment://usage.png")
    except TimeoutError:
        log.warning(
            "The usage chart of guild %s took over %.0f s; answering without it", guild_id, RENDER_TIMEOUT
        )
        csv_bytes = usage.csv_text(jobs).encode("utf-8")
        embed.set_footer(text="The chart took too long to draw; try again in a moment.")
    files.append(discord.File(io.BytesIO(csv_bytes), filename="usage.csv"))
    await interaction.followup.send(embed=embed, files=files, ephemeral=True, allowed_mentions=NO_MENTIONS)
