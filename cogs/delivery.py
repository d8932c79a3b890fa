"""The delivery worker: launches, follows and posts every video, exactly once.

One ``tasks.loop`` ticks four times a second. Each tick (its own ``try``, so nothing stops the loop):

1. marks as *lost* and refunds the ``submitting`` jobs a dead process left behind (their lease expired);
2. claims due queued jobs, round-robin across members, under ``MAX_CONCURRENT_GENERATIONS`` in flight
   for the whole bot, and submits each: ``submitting`` is committed *before* the generate call;
3. claims processing jobs whose next poll is due and asks the provider (adaptive schedule,
   :mod:`ulazai.polling`; every provider call is paced by the client's global rate limiter);
4. claims completed jobs and posts them: download to a temporary file, attach (or link when too big),
   with a nonce so a retry after a crash cannot post twice, then commit ``delivered`` at once;
5. now and then, refreshes the queue positions shown on waiting jobs' status cards.

Every job is worked in its own task under a lease renewed in the background, and every later write is
fenced by that lease, so several bot processes sharing one PostgreSQL database never work a job twice.
State lives only in the database: a restarted process simply carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from cogs import audit as audit_lines
from cogs import cards
from cogs.audit import audit
from cogs.common import NO_MENTIONS, mention_only
from cogs.video import posted_video_view
from storage import DeliveredVia, InvalidTransition, Job, JobNotFound, JobState, LeaseLost
from ulazai.download import (
    DownloadedVideo,
    DownloadError,
    VideoTooLargeError,
    download_video,
    host_is_private,
)
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
)
from ulazai.polling import IN_RANGE_INTERVAL, first_poll_delay, next_poll_delay
from ulazai.pricing import estimate_credits
from ulazai.requests import AspectRatio, GenerationMode, KlingModel, Quality, VideoSpec, build_request
from ulazai.results import DEFAULT_ESTIMATED_TIME, EstimatedTime, TaskStatus

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: How often the worker looks for due work: a due poll or post waits half of this on average.
TICK_SECONDS = 0.25
#: How often it looks for submissions a dead process left behind (their leases last far longer).
RECOVER_SECONDS = 5.0
#: Unboosted servers (and DMs) accept 10 MiB per message.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
#: Status cards are edited at most this often (seconds), unless the job reached an end.
CARD_EDIT_INTERVAL = 5.0
QUEUE_REFRESH_SECONDS = 10.0
#: How long an unexpected error makes a job wait before it is tried again.
RETRY_AFTER_ERROR = timedelta(seconds=30)
#: Discord error codes after which posting the same thing again cannot work.
UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS, TOO_LARGE, CANNOT_DM = 10003, 50001, 50013, 40005, 50007


def spec_of(job: Job) -> VideoSpec:
    """The provider request a job stands for (its columns are exactly what the member asked)."""
    return VideoSpec(
        model=KlingModel(job.model),
        prompt=job.prompt,
        mode=GenerationMode(job.mode),
        duration=job.duration,
        quality=Quality(job.quality) if job.quality else None,
        aspect_ratio=AspectRatio(job.aspect_ratio) if job.aspect_ratio else None,
        sound=job.sound,
        multi_shot=job.multi_shot,
        image_urls=tuple(job.image_urls),
        start_frame_url=job.start_frame_url,
        end_frame_url=job.end_frame_url,
        directory_optin=job.directory_optin,
    )


def estimate_of(job: Job) -> EstimatedTime:
    if job.eta_low_seconds is not None and job.eta_high_seconds is not None:
        return EstimatedTime(job.eta_low_seconds, job.eta_high_seconds)
    return DEFAULT_ESTIMATED_TIME


def nonce_for(job_id: int) -> str:
    """The same for every attempt at posting one job (Discord keeps nonces for a few minutes)."""
    return f"kling-job-{job_id}"


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class CardEditor:
    """Edits status cards in place: at most one edit per card every few seconds, none when unchanged."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        self._last: dict[int, tuple[float, dict[str, Any]]] = {}

    async def update(self, job: Job, *, queue_position: int | None = None, force: bool = False) -> None:
        if job.status_message_id is None:
            return
        embed = cards.status_card(job, queue_position=queue_position, now=self.bot.storage.now())
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
        try:
            await message.edit(embed=embed, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.info("Status card of job %s not updated: %s", job.id, error)


class Delivery(commands.Cog):
    """Runs the jobs; see the module docstring."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        settings = bot.settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self.max_in_flight = settings.max_concurrent_generations
        self.processing_timeout = timedelta(minutes=settings.processing_timeout_minutes)
        self.cards = CardEditor(bot)
        self.allow_private_downloads = False
        self.working: dict[int, asyncio.Task[None]] = {}
        #: Jobs being submitted or polled right now (each is, or waits for, a provider call).
        self.calling: set[int] = set()
        #: Provider calls the rate limit allows per tick: the most worth claiming at once.
        self.calls_per_tick = max(1, math.ceil(settings.provider_max_rps * TICK_SECONDS))
        self._queue_refreshed = 0.0
        self._recovered = 0.0
        self._queue_task: asyncio.Task[None] | None = None
        #: The place in line each queued job's card shows, so only cards whose place changed are edited.
        self._shown_position: dict[int, int] = {}

    def timeout_text(self) -> str:
        seconds = int(self.processing_timeout.total_seconds())
        return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"

    async def cog_load(self) -> None:
        # Downloads from non-global addresses only when the provider itself is one (a local sandbox).
        self.allow_private_downloads = await host_is_private(self.bot.settings.ulazai_base_url)
        self.loop.start()

    async def cog_unload(self) -> None:
        self.loop.cancel()
        if self._queue_task is not None:
            self._queue_task.cancel()
        for task in list(self.working.values()):
            task.cancel()
        await asyncio.gather(*self.working.values(), return_exceptions=True)

    @tasks.loop(seconds=TICK_SECONDS)
    async def loop(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("The delivery worker's pass failed; trying again in %s s", TICK_SECONDS)
        self.bot.worker_heartbeat = time.monotonic()

    @loop.before_loop
    async def _before(self) -> None:
        await self.bot.wait_until_ready()

    async def tick(self) -> None:
        storage = self.bot.storage
        if time.monotonic() - self._recovered >= RECOVER_SECONDS:
            self._recovered = time.monotonic()
            for job in await storage.recover_lost_submissions():
                self.spawn(job, self.after_lost(job))
        # Claim only what the provider's rate lets us start soon: a job claimed now and left waiting for
        # the rate limiter would hold memory and a lease, and a submission waiting there when the
        # process dies would be counted lost. Polls first: those videos are already paid for.
        free = max(0, self.calls_per_tick * 2 - len(self.calling))
        if free:
            for job in await storage.claim_for_poll(self.owner, limit=free, lease=self.lease):
                self.spawn(job, self.poll(job), calls_provider=True)
                free -= 1
        if free:
            for job in await storage.claim_fair_for_submit(
                self.owner, limit=free, max_in_flight=self.max_in_flight, lease=self.lease
            ):
                self.spawn(job, self.submit(job), calls_provider=True)
        for job in await storage.claim_for_delivery(self.owner, limit=5, lease=self.lease):
            self.spawn(job, self.deliver(job))
        refreshing = self._queue_task is not None and not self._queue_task.done()
        if not refreshing and time.monotonic() - self._queue_refreshed >= QUEUE_REFRESH_SECONDS:
            # In the background: a hundred card edits must never hold up submitting and posting.
            self._queue_refreshed = time.monotonic()
            self._queue_task = asyncio.create_task(self.refresh_queue(), name="queue-positions")

    def spawn(self, job: Job, work: Coroutine[Any, Any, None], *, calls_provider: bool = False) -> None:
        """Work one job in its own task; its failure is logged and retried later, never fatal."""
        assert job.id is not None
        job_id = job.id
        if calls_provider:
            self.calling.add(job_id)

        async def guarded() -> None:
            try:
                async with self.holding(job_id):
                    await work
            except (LeaseLost, InvalidTransition, JobNotFound) as error:
                log.info("Job %s moved on without us: %s", job_id, error)
            except Exception:
                log.exception("Unexpected error working job %s; retrying it later", job_id)
                with contextlib.suppress(Exception):
                    await self.bot.storage.release_lease(
                        job_id, owner=self.owner, next_attempt_at=self.bot.storage.now() + RETRY_AFTER_ERROR
                    )

        task = asyncio.create_task(guarded(), name=f"job-{job_id}")
        self.working[job_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            self.working.pop(job_id, None)
            self.calling.discard(job_id)

        task.add_done_callback(finished)

    @contextlib.asynccontextmanager
    async def holding(self, job_id: int) -> AsyncIterator[None]:
        """Renew the job's lease in the background while it is worked (a slow upload outlives it)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                try:
                    await self.bot.storage.renew_lease(job_id, owner=self.owner, lease=self.lease)
                except (LeaseLost, JobNotFound):
                    return  # released or taken over: the fenced writes will tell the worker

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()

    # -- launching ---------------------------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        storage = self.bot.storage
        job_id = job.id
        assert job_id is not None
        job = await storage.mark_submitting(job_id, owner=self.owner)  # committed before the call
        assert job.id is not None
        await self.cards.update(job)
        try:
            request = build_request(spec_of(job))
            result = await self.bot.ulazai.generate(request)
        except InvalidRequestError as error:
            await self.end(await storage.fail(job_id, owner=self.owner, reason=error.message))
            return
        except RateLimitedError as error:
            delay = error.retry_after if error.retry_after is not None else min(300.0, 5.0 * 2**job.attempts)
            log.warning("UlazAI is rate limiting; job %s waits %.0f s", job.id, delay)
            await storage.requeue_with_backoff(
                job_id,
                owner=self.owner,
                retry_at=storage.now() + timedelta(seconds=delay),
                error="rate limited",
            )
            return
        except (BadRequestError, InsufficientCreditsError, AuthenticationError) as error:
            reason = {
                InsufficientCreditsError: "the server's UlazAI account is out of video credits",
                AuthenticationError: "the bot's UlazAI key was refused (an admin needs to fix the configuration)",
            }.get(type(error), f"UlazAI refused the request: {error.message}")
            log.error("Job %s refused by UlazAI: %r", job.id, error)
            job = await storage.fail(job_id, owner=self.owner, reason=reason)
            await self.end(job, detail=f"UlazAI refused it (HTTP {error.status}): {error.message}")
            return
        except ProviderError as error:
            # A timeout, a 5xx or an unreadable answer: the task may or may not exist. Never retried.
            log.error("Job %s lost: the generate call ended with %r", job.id, error)
            job = await storage.mark_lost(
                job_id,
                owner=self.owner,
                reason="UlazAI did not confirm the video started; nothing is charged",
            )
            await self.end(
                job,
                detail=f"The generate call ended with {error!r}; check the UlazAI dashboard for a task "
                "started at that time.",
            )
            return
        estimate = result.estimated_time or DEFAULT_ESTIMATED_TIME
        credits = result.credits_used if result.credits_used is not None else estimate_credits(spec_of(job))
        next_poll = storage.now() + timedelta(seconds=first_poll_delay(estimate))
        job = await self.record_started(job_id, result.task_id, credits, estimate, next_poll)
        assert job.id is not None
        job = await storage.release_lease(job_id, owner=self.owner, next_attempt_at=next_poll)
        await self.cards.update(job, force=True)

    async def record_started(
        self, job_id: int, task_id: str, credits: int, estimate: EstimatedTime, next_poll: datetime
    ) -> Job:
        """Commit ``processing`` after the provider accepted: retried, because losing this write after a
        successful (and charged) generate would refund a video that is being made."""
        for attempt in range(1, 6):
            try:
                return await self.bot.storage.mark_processing(
                    job_id,
                    owner=self.owner,
                    task_id=task_id,
                    credits_used=credits,
                    eta_low_seconds=estimate.low,
                    eta_high_seconds=estimate.high,
                    next_poll_at=next_poll,
                )
            except (LeaseLost, InvalidTransition, JobNotFound):
                raise
            except Exception:
                if attempt == 5:
                    log.critical("Job %s: UlazAI task %s started but could not be recorded", job_id, task_id)
                    raise
                log.warning(
                    "Job %s: recording UlazAI task %s failed; retrying", job_id, task_id, exc_info=True
                )
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    # -- following ---------------------------------------------------------------------------------

    async def poll(self, job: Job) -> None:
        storage = self.bot.storage
        job_id, task_id = job.id, job.provider_task_id
        assert job_id is not None
        assert task_id is not None
        now = storage.now()
        elapsed = (now - (job.submitted_at or now)).total_seconds()
        try:
            result = await self.bot.ulazai.status(KlingModel(job.model), task_id)
        except ProviderError as error:
            log.warning("Status of job %s unavailable: %r", job_id, error)
            if now - (job.submitted_at or now) > self.processing_timeout:
                await self.end(
                    await storage.fail(job_id, owner=self.owner, reason="UlazAI stopped answering")
                )
                return
            await storage.release_lease(
                job_id, owner=self.owner, next_attempt_at=now + timedelta(seconds=IN_RANGE_INTERVAL * 2)
            )
            return
        if result.status is TaskStatus.COMPLETED:
            assert result.video_url is not None
            job = await storage.mark_completed(
                job_id, owner=self.owner, video_url=result.video_url, credits_charged=result.credits_charged
            )
            await self.deliver(job)  # still under our lease: post at once (it updates the card after)
            return
        if result.status is TaskStatus.FAILED:
            reason = result.error or "UlazAI could not make this video"
            await self.end(await storage.fail(job_id, owner=self.owner, reason=reason))
            return
        if now - (job.submitted_at or now) > self.processing_timeout:
            reason = f"still not ready after {self.timeout_text()}"
            await self.end(await storage.fail(job_id, owner=self.owner, reason=reason))
            return
        estimate = estimate_of(job)
        overdue = int(max(0.0, elapsed - estimate.high) // IN_RANGE_INTERVAL)
        delay = next_poll_delay(
            elapsed=elapsed, estimate=estimate, progress=result.progress, overdue_polls=overdue
        )
        # Never sleep past the processing deadline: the job must be failed and refunded on time.
        delay = min(delay, max(1.0, self.processing_timeout.total_seconds() - elapsed + 0.5))
        job = await storage.release_lease(
            job_id,
            owner=self.owner,
            next_attempt_at=now + timedelta(seconds=delay),
            progress=result.progress,
        )
        await self.cards.update(job)

    # -- posting -----------------------------------------------------------------------------------

    async def deliver(self, job: Job) -> None:
        job_id = job.id
        assert job_id is not None
        assert job.video_url is not None
        video: DownloadedVideo | None = None
        why_link: str | None = None
        guild = self.bot.get_guild(job.guild_id)
        upload_limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        try:
            try:
                video = await download_video(
                    self.bot.http_session,
                    job.video_url,
                    # Nothing bigger than this server accepts is worth downloading: it goes as a link.
                    max_bytes=min(self.bot.settings.max_video_bytes, upload_limit),
                    allow_private=self.allow_private_downloads,
                )
            except VideoTooLargeError as error:
                size = f"it is {megabytes(error.size)}" if error.size else "it is"
                if error.limit == upload_limit:
                    why_link = f"{size}, more than this server's {megabytes(upload_limit)} upload limit"
                else:
                    why_link = f"{size} larger than the {megabytes(error.limit)} this bot downloads"
            except DownloadError as error:
                log.warning("Could not download the video of job %s: %r", job.id, error)
                why_link = "I could not download it to attach it here"
            message, via, notes = await self.post(job, video, why_link)
        finally:
            if video is not None:
                await asyncio.to_thread(video.cleanup)
        if message is None or via is None:
            job = await self.bot.storage.fail(
                job_id, owner=self.owner, reason=f"could not be posted: {notes}"
            )
            await self.cards.update(job, force=True)
            await audit(self.bot, job.guild_id, f"⚠️ The video of job #{job.id} could not be posted: {notes}.")
            return
        job = await self.bot.storage.mark_delivered(
            job_id, owner=self.owner, message_id=message.id, via=via, notes=notes
        )
        await self.cards.update(job, force=True)
        await audit(self.bot, job.guild_id, audit_lines.delivered(job))

    async def post(
        self, job: Job, video: DownloadedVideo | None, why_link: str | None
    ) -> tuple[discord.Message | None, DeliveredVia | None, str]:
        """Post the video: attached when it fits, else as a link; in the channel, else by DM."""
        assert job.id is not None
        assert job.video_url is not None
        guild = self.bot.get_guild(job.guild_id)
        limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        if video is not None and video.size > limit:
            why_link = (
                f"it is {megabytes(video.size)}, more than this server's {megabytes(limit)} upload limit"
            )
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        reference = cards.card_reference(job)
        attach = video is not None and why_link is None
        try:
            message = await self._send(channel, job, video if attach else None, why_link, reference)
            if attach:
                return message, DeliveredVia.ATTACHMENT, "attached"
            return message, DeliveredVia.LINK, f"posted as a link: {why_link}"
        except discord.HTTPException as error:
            if error.code == TOO_LARGE and attach:
                why_link = "Discord refused the file as too large for this server"
                with contextlib.suppress(discord.HTTPException):
                    message = await self._send(channel, job, None, why_link, reference)
                    return message, DeliveredVia.LINK, f"posted as a link: {why_link}"
            elif error.code not in (UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS):
                raise  # 5xx and 429 were already retried by discord.py; try again on a later pass
            channel_problem = f"the channel refused it (Discord error {error.code})"
        # The channel is gone or closed to the bot: the member still gets their video, privately.
        try:
            user = await self.bot.fetch_user(job.user_id)
            dm = await user.create_dm()
            fits = video is not None and video.size <= DEFAULT_UPLOAD_LIMIT
            message = await self._send(
                dm, job, video if fits else None, None if fits else "it is too big to attach", None
            )
            return message, DeliveredVia.DIRECT_MESSAGE, f"sent by direct message: {channel_problem}"
        except discord.HTTPException as error:
            failed = f"{channel_problem}, and a direct message failed too (Discord error {error.code})"
            return None, None, failed

    async def _send(
        self,
        channel: discord.abc.Messageable,
        job: Job,
        video: DownloadedVideo | None,
        why_link: str | None,
        reference: discord.MessageReference | None,
    ) -> discord.Message:
        assert job.id is not None
        assert job.video_url is not None
        requester = discord.Object(job.user_id)
        if video is not None:
            handle = await asyncio.to_thread(video.path.open, "rb")
            try:
                return await channel.send(
                    f"<@{job.user_id}> your video is ready!",
                    file=discord.File(handle, filename=f"kling-{job.id}.mp4"),
                    reference=reference,  # type: ignore[arg-type]
                    allowed_mentions=mention_only(requester),
                    view=posted_video_view(job.id),
                    nonce=nonce_for(job.id),
                )
            finally:
                await asyncio.to_thread(handle.close)
        note = (
            f"\n-# Posted as a link because {why_link}. The link may expire: save the video soon."
            if why_link
            else ""
        )
        return await channel.send(
            f"<@{job.user_id}> your video is ready: {job.video_url}{note}",
            reference=reference,  # type: ignore[arg-type]
            allowed_mentions=mention_only(requester),
            view=posted_video_view(job.id),
            nonce=nonce_for(job.id),
        )

    # -- endings and the queue -----------------------------------------------------------------------

    async def end(self, job: Job, *, detail: str | None = None) -> None:
        """A job failed or was lost: update its card, tell the member (mentioning only them) and write
        the audit line (``detail``: what the operator should know beyond the member's reason)."""
        await self.cards.update(job, force=True)
        # Storage has moved the credits back already (the job's holds read zero now): say how many.
        refunded = (
            job.estimate_credits if job.credits_used is None else job.credits_used - job.shortfall_credits
        )
        text = (
            f"<@{job.user_id}> your video could not be made: {job.error or 'unknown reason'}. "
            f"Your {refunded} credits are back."
        )
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        reference = cards.card_reference(job)
        try:
            await channel.send(
                text,
                reference=reference,  # type: ignore[arg-type]
                allowed_mentions=mention_only(discord.Object(job.user_id)),
            )
        except discord.HTTPException as error:
            log.warning("Could not tell the member about job %s: %s", job.id, error)
        await audit(self.bot, job.guild_id, audit_lines.ended(job, refunded, detail))

    async def after_lost(self, job: Job) -> None:
        """A generate call a dead process left in flight: refunded by storage; tell everyone."""
        await self.end(job, detail="Check the UlazAI dashboard for a task started at that time.")

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
