"""The delivery worker's Discord side: it ticks the worker, shows jobs on their cards, posts videos.

What to claim, submit and poll, and what each answer does to a job, is :mod:`generation.worker` and
:mod:`generation.outcomes`; this cog is the worker's :class:`~generation.worker.Events`: it edits status
cards in place, tells members and the audit log how their job ended, and posts each video exactly once:
download to a temporary file, attach (or link when too big), with a nonce so a retry after a crash
cannot post twice, in the channel or, when the channel refuses, by direct message; then the worker
commits ``delivered`` at once. Now and then it also refreshes the queue positions shown on cards.
When this process pauses or resumes the provider line (:mod:`generation.breaker`), it tells the
servers and redraws the waiting cards (:mod:`cogs.provider_line`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from cogs import audit as audit_lines
from cogs import cards, provider_line, views
from cogs.audit import audit
from cogs.common import NO_MENTIONS, mention_only
from cogs.remote_guilds import RemoteUploadLimits
from generation import fitting, outcomes
from generation.outcomes import Posted
from generation.worker import TICK_SECONDS, Worker
from storage import AccountState, DeliveredVia, Job, JobState, Resumed
from ulazai.download import (
    DownloadedVideo,
    DownloadError,
    VideoTooLargeError,
    download_video,
    host_is_private,
)

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: Status cards are edited at most this often (seconds), unless the job reached an end.
CARD_EDIT_INTERVAL = 5.0
QUEUE_REFRESH_SECONDS = 10.0
#: Discord error codes after which posting the same thing again cannot work.
UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS, TOO_LARGE = 10003, 50001, 50013, 40005


@dataclass(frozen=True, slots=True)
class Attachment:
    """A video file to attach: the download itself, or its fitted copy."""

    path: Path
    size: int


def nonce_for(job_id: int) -> str:
    """The same for every attempt at posting one job (Discord keeps nonces for a few minutes)."""
    return f"kling-job-{job_id}"


class CardEditor:
    """Edits status cards in place: at most one edit per card every few seconds, none when unchanged."""

    def __init__(self, bot: KlingBot, paused: Callable[[], bool] = lambda: False) -> None:
        self.bot = bot
        self.paused = paused
        self._last: dict[int, tuple[float, dict[str, Any]]] = {}

    async def update(
        self, job: Job, *, queue_position: int | None = None, force: bool = False, poster: Path | None = None
    ) -> None:
        """``poster``: a still of the finished video, attached to the card as its thumbnail."""
        if job.status_message_id is None:
            return
        now = self.bot.storage.now()
        eta = await self.bot.eta.for_card(job, now, queue_position=queue_position)
        embed = cards.status_card(
            job,
            queue_position=queue_position,
            now=now,
            poster=poster is not None,
            eta=eta,
            paused=self.paused(),
        )
        payload = embed.to_dict()
        last = self._last.get(job.status_message_id)
        if last is not None and last[1] == payload:
            return
        final = job.state not in (JobState.QUEUED, JobState.SUBMITTING, JobState.PROCESSING)
        if last is not None and not (force or final) and time.monotonic() - last[0] < CARD_EDIT_INTERVAL:
            return
        self._last[job.status_message_id] = (time.monotonic(), dict(payload))
        if final:
            self._last.pop(job.status_message_id, None)
        message = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id).get_partial_message(
            job.status_message_id
        )
        files: dict[str, Any] = {}
        if poster is not None:
            data = await asyncio.to_thread(poster.read_bytes)
            files["attachments"] = [discord.File(io.BytesIO(data), filename=cards.POSTER_FILENAME)]
        try:
            await message.edit(embed=embed, allowed_mentions=NO_MENTIONS, **files)
        except discord.HTTPException as error:
            log.info("Status card of job %s not updated: %s", job.id, error)
            return
        self.bot.eta.shown(eta)


class Delivery(commands.Cog):
    """Ticks :class:`~generation.worker.Worker` and is its Discord side; see the module docstring."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        settings = bot.settings
        self.worker = Worker(
            bot.storage,
            bot.ulazai,
            self,
            owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
            lease=timedelta(seconds=settings.worker_lease_seconds),
            max_in_flight=settings.max_concurrent_generations,
            processing_timeout=timedelta(minutes=settings.processing_timeout_minutes),
            provider_max_rps=settings.provider_max_rps,
            probe_interval=timedelta(seconds=settings.provider_pause_probe_seconds),
            metrics=bot.metrics,
        )
        self.cards = CardEditor(bot, paused=lambda: self.worker.account.paused)
        self.remote_limits = RemoteUploadLimits(bot)
        self.allow_private_downloads = False
        self._queue_refreshed = 0.0
        self._queue_task: asyncio.Task[None] | None = None
        #: The place in line each queued job's card shows, so only cards whose place changed are edited.
        self._shown_position: dict[int, int] = {}

    async def cog_load(self) -> None:
        # Downloads from non-global addresses only when the provider itself is one (a local sandbox).
        self.allow_private_downloads = await host_is_private(self.bot.settings.ulazai_base_url)
        self.loop.start()

    async def cog_unload(self) -> None:
        """Stop ticking and wait for what is running to end: leases expire and another pass, here or in
        another process, takes the jobs up where the database says they are."""
        self.loop.cancel()
        if self._queue_task is not None:
            self._queue_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._queue_task
        await self.worker.stop()

    @tasks.loop(seconds=TICK_SECONDS)
    async def loop(self) -> None:
        try:
            await self.worker.tick()
            self.refresh_queue_now_and_then()
        except Exception:
            log.exception("The delivery worker's pass failed; trying again in %s s", TICK_SECONDS)
        self.bot.worker_heartbeat = time.monotonic()

    @loop.before_loop
    async def _before(self) -> None:
        await self.bot.wait_until_ready()

    # -- the worker's events -------------------------------------------------------------------------

    async def show(self, job: Job, *, force: bool = False) -> None:
        await self.cards.update(job, force=force)

    async def ended(self, job: Job, *, refunded: int, detail: str | None) -> None:
        """Update the card, tell the member (mentioning only them), write the audit line."""
        await self.cards.update(job, force=True)
        text = (
            f"<@{job.user_id}> your video could not be made: {job.error or 'unknown reason'}. "
            f"Your {refunded} credits are back."
        )
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        try:
            await channel.send(
                text,
                reference=cards.card_reference(job),  # type: ignore[arg-type]
                allowed_mentions=mention_only(discord.Object(job.user_id)),
            )
        except discord.HTTPException as error:
            log.warning("Could not tell the member about job %s: %s", job.id, error)
        await audit(self.bot, job.guild_id, audit_lines.ended(job, refunded, detail))

    async def deliver(self, job: Job) -> None:
        """Download, fit when too big, post, record, then the card with a still of the video (made
        after the post, so the member does not wait for it); the worker holds the job's lease meanwhile.

        A crash anywhere here leaves the job completed and leased: the lease runs out, another pass
        downloads and fits again, and the nonce keeps a post that did go out from going out twice.
        """
        job_id = job.id
        assert job_id is not None
        assert job.video_url is not None
        video: DownloadedVideo | None = None
        fitted = fitting.FitResult(None, 0, None)
        poster: Path | None = None
        why_link: str | None = None
        limit = await self.upload_limit(job)
        try:
            try:
                video = await download_video(
                    self.bot.http_session,
                    job.video_url,
                    max_bytes=self.bot.settings.max_video_bytes,
                    allow_private=self.allow_private_downloads,
                )
            except VideoTooLargeError as error:
                why_link = outcomes.too_large_reason(error.size, error.limit, limit)
            except DownloadError as error:
                log.warning("Could not download the video of job %s: %r", job.id, error)
                why_link = "I could not download it to attach it here"
            if video is not None and outcomes.over_limit_reason(video.size, limit) is not None:
                fitted = await fitting.fit_for_posting(video.path, video.size, limit, job_id=job_id)
            file = self.file_to_attach(video, fitted, limit)
            message, posted = await self.post(
                job, file, fitted.why_link or why_link, fitted=fitted.path is not None
            )
            job = await self.worker.finish_delivery(
                job, posted if isinstance(posted, Posted) else None, posted if isinstance(posted, str) else ""
            )
            if video is not None and message is not None:  # the card's still: after the video is out
                poster = await fitting.poster_of(fitted.path or video.path, job_id=job_id)
            await self.cards.update(job, force=True, poster=poster)
        finally:
            if video is not None:
                await asyncio.to_thread(video.cleanup)
            await asyncio.to_thread(fitting.discard, fitted.path)
            await asyncio.to_thread(fitting.discard, poster)
        if message is None:
            await audit(
                self.bot, job.guild_id, f"⚠️ The video of job #{job.id} could not be posted: {posted}."
            )
        else:
            await audit(self.bot, job.guild_id, audit_lines.delivered(job))

    async def paused(self, account: AccountState) -> None:
        await provider_line.tell_paused(self.bot, account)
        self._shown_position.clear()
        await provider_line.redraw_waiting_cards(self.bot)

    async def resumed(self, resumed: Resumed) -> None:
        await provider_line.tell_resumed(self.bot, resumed)
        self._shown_position.clear()
        await provider_line.redraw_waiting_cards(self.bot)

    async def low_credits(self, crossings: list[tuple[int, int]], remaining: int) -> None:
        await provider_line.tell_low_credits(self.bot, crossings, remaining)

    # -- posting -------------------------------------------------------------------------------------

    async def upload_limit(self, job: Job) -> int:
        """What a message may carry where the job is posted: the server's limit (it follows the boost
        tier; the worker posts outside any interaction, so the guild's figure is the one it has; a
        server on another process's shard is asked by REST)."""
        guild = self.bot.get_guild(job.guild_id)
        size = guild.filesize_limit if guild is not None else await self.remote_limits.of(job.guild_id)
        return outcomes.upload_limit(size)

    @staticmethod
    def file_to_attach(
        video: DownloadedVideo | None, fitted: fitting.FitResult, limit: int
    ) -> Attachment | None:
        """The fitted copy when there is one, else the download when it fits, else nothing (a link)."""
        if fitted.path is not None:
            return Attachment(fitted.path, fitted.size)
        if video is not None and outcomes.over_limit_reason(video.size, limit) is None:
            return Attachment(video.path, video.size)
        return None

    async def post(
        self, job: Job, file: Attachment | None, why_link: str | None, *, fitted: bool = False
    ) -> tuple[discord.Message | None, Posted | str]:
        """Post the video: attached when there is a file to attach, else as a link; in the channel, else
        by DM. ``fitted``: the file is a re-encoded copy, so the message links the original too.

        Returns the message and where it went, or ``None`` and why it could not be posted anywhere.
        """
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        reference = cards.card_reference(job)
        via = (
            DeliveredVia.LINK if file is None else DeliveredVia.FITTED if fitted else DeliveredVia.ATTACHMENT
        )
        try:
            message = await self._send(channel, job, file, why_link, reference, fitted=fitted)
            return message, Posted(message.id, via, outcomes.delivery_notes(via, why_link))
        except discord.HTTPException as error:
            if error.code == TOO_LARGE and file is not None:
                why_link = "Discord refused the file as too large for this server"
                with contextlib.suppress(discord.HTTPException):
                    message = await self._send(channel, job, None, why_link, reference)
                    link = DeliveredVia.LINK
                    return message, Posted(message.id, link, outcomes.delivery_notes(link, why_link))
            elif error.code not in (UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS):
                raise  # 5xx and 429 were already retried by discord.py; try again on a later pass
            channel_problem = f"the channel refused it (Discord error {error.code})"
        # The channel is gone or closed to the bot: the member still gets their video, privately.
        try:
            user = await self.bot.fetch_user(job.user_id)
            dm = await user.create_dm()
            fits = (
                file is not None
                and outcomes.over_limit_reason(file.size, outcomes.upload_limit(None)) is None
            )
            message = await self._send(
                dm,
                job,
                file if fits else None,
                None if fits else "it is too big to attach",
                None,
                fitted=fitted,
            )
            dm_via = DeliveredVia.DIRECT_MESSAGE
            return message, Posted(message.id, dm_via, outcomes.delivery_notes(dm_via, channel_problem))
        except discord.HTTPException as error:
            return None, f"{channel_problem}, and a direct message failed too (Discord error {error.code})"

    async def _send(
        self,
        channel: discord.abc.Messageable,
        job: Job,
        file: Attachment | None,
        why_link: str | None,
        reference: discord.MessageReference | None,
        *,
        fitted: bool = False,
    ) -> discord.Message:
        assert job.id is not None
        assert job.video_url is not None
        common: dict[str, Any] = {
            "reference": reference,
            "allowed_mentions": mention_only(discord.Object(job.user_id)),
            "view": views.posted_video_view(job.id),
            "nonce": nonce_for(job.id),
        }
        if file is not None:
            original = (
                f"\n-# Full quality: {job.video_url} (the provider's link may expire)" if fitted else ""
            )
            handle = await asyncio.to_thread(file.path.open, "rb")
            try:
                return await channel.send(
                    f"<@{job.user_id}> your video is ready!{original}",
                    file=discord.File(handle, filename=f"kling-{job.id}.mp4"),
                    **common,
                )
            finally:
                await asyncio.to_thread(handle.close)
        note = (
            f"\n-# Posted as a link because {why_link}. The link may expire: save the video soon."
            if why_link
            else ""
        )
        return await channel.send(f"<@{job.user_id}> your video is ready: {job.video_url}{note}", **common)

    # -- the queue -----------------------------------------------------------------------------------

    def refresh_queue_now_and_then(self) -> None:
        refreshing = self._queue_task is not None and not self._queue_task.done()
        if not refreshing and time.monotonic() - self._queue_refreshed >= QUEUE_REFRESH_SECONDS:
            # In the background: a hundred card edits must never hold up submitting and posting.
            self._queue_refreshed = time.monotonic()
            self._queue_task = asyncio.create_task(self.refresh_queue(), name="queue-positions")

    async def refresh_queue(self) -> None:
        """Move waiting jobs' cards to their new place in line (only those whose place changed)."""
        try:
            positions = await self.bot.storage.queue_positions(limit=100)
            self._shown_position = {k: v for k, v in self._shown_position.items() if k in positions}
            for job_id, position in positions.items():
                if self._shown_position.get(job_id) == position:
                    continue
                job = await self.bot.storage.get_job(job_id)
                if job is not None and job.state is JobState.QUEUED:
                    self._shown_position[job_id] = position
                    await self.cards.update(job, queue_position=position)
        except Exception:
            log.exception("Could not refresh the queue positions")


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Delivery(bot))
