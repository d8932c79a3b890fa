"""The whole bot, for real, on 127.0.0.1: fake Discord + sandbox provider + a fresh database + KlingBot.

Tests send real INTERACTION_CREATEs through :class:`tests.fakes.discord_api.FakeDiscord` and assert on
what comes out: Discord REST calls, provider calls (``harness.sandbox.requests``) and the database.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
from pydantic import SecretStr

import bot as bot_module
from bot import KlingBot
from config import Settings
from sandbox import Sandbox
from storage import Storage
from tests import leftovers
from tests.fakes.discord_api import FakeDiscord, FakeInteraction
from ulazai.client import RetryPolicy, UlazAIClient
from ulazai.ratelimit import RateLimiter

TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
API_KEY = "sandbox-key-for-harness"


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (valid chunks and CRCs), so magic-byte checks and image decoders both accept it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class Harness:
    fake: FakeDiscord
    sandbox: Sandbox
    storage: Storage
    bot: KlingBot
    settings: Settings

    @property
    def guild_id(self) -> int:
        return self.fake.guild_id

    @property
    def videos(self) -> int:
        return self.fake.channel_ids["videos"]

    @property
    def general(self) -> int:
        return self.fake.channel_ids["general"]

    @property
    def member_id(self) -> int:
        return self.fake.member_id

    @property
    def admin_id(self) -> int:
        return self.fake.admin_id

    async def command(
        self,
        name: str,
        subcommand: str | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        attachments: dict[str, Any] | None = None,
        app_permissions: int | None = None,
        **options: Any,
    ) -> FakeInteraction:
        return await self.fake.send_command(
            name,
            subcommand=subcommand,
            options=options,
            user_id=user_id if user_id is not None else self.member_id,
            channel_id=channel_id if channel_id is not None else self.videos,
            attachments=attachments,
            app_permissions=app_permissions,
        )

    async def answer(self, interaction: FakeInteraction) -> Any:
        """The deferred command's first followup (what the member finally reads)."""
        callback = await interaction.wait_callback()
        assert callback.type == 5, f"expected a defer first, got {callback.type}"
        assert callback.ephemeral
        followup = await interaction.wait_followup()
        await self.handled()
        return followup

    async def handled(self, within: float = 10.0) -> None:
        """Wait until the bot's interaction handlers still running have ended (a request answers with
        its receipt first, then posts its status card and audit line); never fails: a handler still
        running after ``within`` s is left to the test (and to :func:`connected`'s check at the end)."""
        me = asyncio.current_task()
        running = [
            task
            for task in asyncio.all_tasks()
            if task is not me and task.get_name().startswith(HANDLER_TASKS) and not _is_view_timer(task)
        ]
        if running:
            await asyncio.wait(running, timeout=within)

    async def press(
        self, message: Any, prefix: str, *, user_id: int | None = None, **kwargs: Any
    ) -> FakeInteraction:
        """Press the button of ``message`` whose custom_id starts with ``prefix`` (``"quote:confirm:"``)."""
        (custom_id,) = [c for c in message.custom_ids() if c.startswith(prefix)]
        return await self.fake.send_component(
            custom_id,
            message_id=message.id,
            user_id=user_id if user_id is not None else self.member_id,
            **kwargs,
        )

    async def confirmed(self, quote: Any, *, user_id: int | None = None) -> Any:
        """Press Confirm on a quote; what the member reads next (the receipt, or a refusal)."""
        press = await self.press(quote, "quote:confirm:", user_id=user_id)
        callback = await press.wait_callback()
        assert callback.type == 6, f"expected a deferred update first, got {callback.type}"
        followup = await press.wait_followup()
        await self.handled()
        return followup

    def public_messages(self, channel_id: int | None = None) -> list[Any]:
        return self.fake.messages_in(channel_id or self.videos, include_ephemeral=False)

    def provider_calls(self, route: str | None = None) -> list[Any]:
        return [r for r in self.sandbox.requests if route is None or r.route == route]


#: How long a test's last interactions may take to finish before the bot closes, and how long what the
#: bot started may take to end after it closed.
SETTLE_SECONDS = 10.0
#: Names discord.py gives the tasks that run an event or interaction handler.
HANDLER_TASKS = ("CommandTree-invoker", "discord-ui-", "discord.py: ")


def _is_view_timer(task: asyncio.Task[Any]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == "BaseView.__timeout_task_impl"


async def _settle(tasks: list[asyncio.Task[Any]], within: float) -> list[str]:
    """Wait for ``tasks``; cancel those still running after ``within`` s and name them."""
    if not tasks:
        return []
    await asyncio.wait(tasks, timeout=within)
    stuck = [task for task in tasks if not task.done()]
    names = [leftovers.describe_task(task) for task in stuck]
    for task in stuck:
        task.cancel()
    if stuck:
        await asyncio.wait(stuck, timeout=within)
    return names


@asynccontextmanager
async def connected(bot: discord.Client, fake: FakeDiscord, token: str = TOKEN) -> AsyncIterator[None]:
    """Log ``bot`` in to ``fake`` and connect; on the way out close it and wait for all it started.

    Why: ``Client.close()`` neither waits for the interaction handlers still running (a command goes on
    after its last answer: the audit line, say) nor for the background loops it cancels, and it leaves
    each view's timeout timer behind (an ephemeral message's view gets 15 minutes). The database and
    the HTTP session this bot was given close right after: anything of the bot's still running then
    would use a closed engine (which opens a new, never closed, connection) or be cancelled in the
    middle of a query when the event loop ends, orphaning its aiosqlite connection.

    So login runs in the bot's own task, and every task discord.py and the cogs start descends from it
    (:func:`tests.leftovers.descendants`). Before closing, the handlers still running may finish, as
    they would on Discord; after closing, the view timers are cancelled and the rest must end within
    :data:`SETTLE_SECONDS`. One that does not is cancelled, and the test fails naming it.
    """

    async def run() -> None:
        await bot.login(token)  # runs setup_hook: cogs load and start their loops from this task
        await bot.connect()

    task = asyncio.create_task(run(), name=f"bot on {fake.gateway_url}")
    failed = True
    try:
        ready = asyncio.ensure_future(_wait_ready(bot, fake))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await asyncio.wait({ready})
            task.result()  # the bot's own error, if it has one
            raise RuntimeError("the bot stopped before it was ready")
        ready.result()
        yield
        failed = False
    finally:
        handlers = [t for t in leftovers.descendants(task) if t.get_name().startswith(HANDLER_TASKS)]
        late = await _settle(handlers, SETTLE_SECONDS)
        await bot.close()
        late += await _settle([task], SETTLE_SECONDS)
        for timer in filter(_is_view_timer, leftovers.descendants(task)):
            timer.cancel()
        late += await _settle(leftovers.descendants(task), SETTLE_SECONDS)
    if not failed:
        if late:
            raise AssertionError(
                f"still running {SETTLE_SECONDS:.0f} s after it was time to stop: {'; '.join(late)}"
            )
        if not task.cancelled():
            task.result()  # how the bot's connection ended: None after a clean close


async def _wait_ready(bot: discord.Client, fake: FakeDiscord) -> None:
    await fake.wait_until_ready()
    await asyncio.wait_for(bot.wait_until_ready(), 10)


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    fake: FakeDiscord | None = None,
    database_url: str | None = None,
    worker: bool = True,
    sandbox: Sandbox | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Start everything; a given ``fake``/``database_url``/``sandbox`` lets a test restart the bot on the
    same world. ``worker=False`` leaves the delivery worker out, for tests of the commands alone."""
    own_fake = fake is None
    if fake is None:
        fake = FakeDiscord()
        await fake.start()
        fake.add_default_guild()
    own_sandbox = sandbox is None
    if sandbox is None:
        sandbox = Sandbox(api_key=API_KEY, task_seconds=1.0)
        await sandbox.start("127.0.0.1", 0)
    config = Settings(
        _env_file=None,
        discord_token=SecretStr(TOKEN),
        ulazai_api_key=SecretStr(API_KEY),
        ulazai_base_url=sandbox.base_url,
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        dev_guild_id=fake.guild_id,
        heartbeat_file=tmp_path / "heartbeat",
        discord_api_base_url=fake.api_base,
        discord_gateway_url=fake.gateway_url,
        **settings,
    )
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    bot_module.point_discord_at(config.discord_api_base_url, config.discord_gateway_url)
    try:
        async with Storage(config.database_url) as storage, aiohttp.ClientSession() as session:
            await storage.migrate()
            # Quick retries: the tests inject faults and should not wait out real back-offs.
            client = UlazAIClient(
                session,
                base_url=sandbox.base_url,
                api_key=config.ulazai_api_key,
                retry=RetryPolicy(base_backoff=0.01, max_backoff=0.5),
                rate_limiter=RateLimiter(config.provider_max_rps),
            )
            extensions = [e for e in bot_module.INITIAL_EXTENSIONS if worker or e != "cogs.delivery"]
            # A short ready delay, awaited by connected(): a bot closed before discord.py's delayed
            # "ready" would leave that task behind for the event loop's teardown.
            bot = KlingBot(
                config, session, storage, ulazai=client, extensions=extensions, guild_ready_timeout=0.05
            )
            async with connected(bot, fake):
                yield Harness(fake=fake, sandbox=sandbox, storage=storage, bot=bot, settings=config)
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
        if own_sandbox:
            await sandbox.close()
        if own_fake:
            await fake.close()
