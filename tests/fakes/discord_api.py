"""A local fake of Discord's gateway and REST API that the real discord.py client connects to.

Why it exists: dpytest cannot drive slash commands, and mocking discord.py's internals would test our
mocks instead of the bot. This fake speaks the wire protocol instead, on 127.0.0.1: a test starts a
real ``commands.Bot`` (in-process or in a subprocess), sends a real ``INTERACTION_CREATE`` over the
gateway, and asserts on the REST calls that come back (callbacks, followups, channel messages, files,
allowed mentions).

Why it is strict: where Discord refuses something (an empty message, a 2001-character message, a second
interaction callback, a callback after three seconds, a followup before the acknowledgement, a post to a
channel the bot cannot see) the fake refuses it the same way, with Discord's error codes, so the bot's
error handling is exercised instead of a happy path that production would never take.

What discord.py 2.7.1 needs from it, learned from its source and mirrored here:

* ``Route.BASE`` is read when a ``Route`` is built, and ``DiscordWebSocket.DEFAULT_GATEWAY`` when the
  gateway is opened; :func:`point_discord_py_at` sets just these two. The client never asks
  ``GET /gateway`` (only ``AutoShardedClient`` asks ``/gateway/bot``); it connects to
  ``DEFAULT_GATEWAY?v=10&encoding=json&compress=zlib-stream`` and, after READY, resumes at
  ``resume_gateway_url``. The fake ignores ``compress`` and answers with text frames, which
  ``DiscordWebSocket.received_message`` accepts as they are.
* REST bodies are parsed as JSON only when ``Content-Type`` is exactly ``application/json`` (no charset),
  and a 429 is retried only when the response carries a ``Via`` header (otherwise discord.py takes it
  for a Cloudflare ban and raises).
* Interaction callbacks are posted with ``?with_response=1`` and the answer must be an
  ``InteractionCallbackResponse`` (``{"interaction": {...}, "resource": {...}}``): discord.py reads
  ``interaction.response_message_id`` to key a view sent with ``send_message``.
* Every interaction payload needs ``attachment_size_limit`` and ``version``; guild commands are found by
  ``data.guild_id``; a DynamicItem is rebuilt from the interaction's ``message``, so a component
  interaction must carry a message holding that component.
* After op 9 (session not resumable) discord.py sleeps 5 s in ``before_identify_hook`` before it
  identifies again; RESUME (after a dropped socket or op 7) is immediate.
"""

# Test-facing waits take timeout= (``await interaction.wait_callback(timeout=5)`` reads best in a
# test) and each is a bounded wait underneath, so ASYNC109's advice (asyncio.timeout at the call
# site) would only add noise.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import hashlib
import json
import mimetypes
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import discord
import yarl
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket
from discord.http import Route

__all__ = [
    "ALL_PERMISSIONS",
    "AttachmentSpec",
    "CallbackRecord",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Fault",
    "Overwrite",
    "Permission",
    "RecordedCall",
    "UploadedFile",
    "point_discord_py_at",
]

JSON = dict[str, Any]
T = TypeVar("T")

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024
#: Interaction context types: a server, the bot's DM, another private channel.
GUILD_CONTEXT, BOT_DM_CONTEXT, PRIVATE_CHANNEL_CONTEXT = 0, 1, 2


def point_discord_py_at(api_base: str, gateway_url: str) -> None:
    """Point discord.py at another Discord: the two class attributes it reads its addresses from.

    Sets ``discord.http.Route.BASE`` (every REST call, webhooks and interaction callbacks included) and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (the first gateway connection and every
    re-IDENTIFY). A bot process calls this from its own settings, so it stays tiny and pure.
    """
    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class Permission(enum.IntFlag):
    """The permission bits a bot of ours cares about (Discord's values)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS: int = discord.Permissions.all().value

DEFAULT_EVERYONE_PERMISSIONS = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
)
DEFAULT_BOT_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.USE_EXTERNAL_EMOJIS
)
DM_APP_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.USE_EXTERNAL_EMOJIS
)

# Message flags.
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15

# Channel types a message can be posted to (text, DM, voice, group DM, news, threads, stage).
TEXTLIKE_CHANNEL_TYPES = frozenset({0, 1, 2, 3, 5, 10, 11, 12, 13})

# Upload limits by boost tier, as discord.py's Guild.filesize_limit reports them.
TIER_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}

ERROR_MESSAGES: dict[int, str] = {
    0: "General error",
    10003: "Unknown Channel",
    10004: "Unknown Guild",
    10007: "Unknown Member",
    10008: "Unknown Message",
    10011: "Unknown Role",
    10013: "Unknown User",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    10063: "Unknown application command",
    30032: "Maximum number of application commands reached (100)",
    40005: "Request entity too large",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50005: "Cannot edit a message authored by another user",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50008: "Cannot send messages in a non-text channel",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
    130000: "API resource is currently overloaded. Try again a little later",
}
HTTP_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Option types of application commands.
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11

# Interaction types and the callback types Discord accepts for each.
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    APPLICATION_COMMAND: frozenset({4, 5, 9}),
    MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    AUTOCOMPLETE: frozenset({8}),
    MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true", "yes"}


class _Snowflakes:
    """Real-looking, strictly increasing snowflakes, so discord.py's ``created_at`` makes sense."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17)
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate


class _ApiError(Exception):
    """Raised by a handler to answer with Discord's error body."""

    def __init__(
        self, status: int, code: int = 0, message: str | None = None, errors: JSON | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code) or f"{status}: {HTTP_REASONS.get(status, 'Error')}"
        self.errors = errors


def _form_error(path: str, code: str, message: str) -> _ApiError:
    """A 50035 Invalid Form Body naming one field, shaped like Discord's nested ``errors``."""
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return _ApiError(400, 50035, errors=errors)


# --------------------------------------------------------------------------------------------------
# Records handed to tests
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request, as the bot sent it."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class AttachmentSpec:
    """A file a user attaches to a command option; ``content_type`` is guessed from the name if unset."""

    data: bytes
    filename: str = "file.bin"
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    description: str | None = None


@dataclass(eq=False)
class RecordedCall:
    """One HTTP request the bot made, with the answer it got.

    ``json`` is the JSON body, or ``payload_json`` of a multipart body; ``files`` are the file parts.
    ``route`` is discord.py's route template (``"POST /channels/{channel_id}/messages"``), ``path`` the
    concrete path below ``/api/v10``; ``at`` is ``time.monotonic()`` on arrival.
    """

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    authorized: bool
    json: Any
    form: dict[str, str]
    files: list[UploadedFile]
    at: float
    status: int = 0
    response: Any = None
    injected: bool = False
    unhandled: bool = False

    def __repr__(self) -> str:
        return f"<RecordedCall {self.method} {self.path} -> {self.status}>"


@dataclass(eq=False)
class FakeMessage:
    """A message the fake holds: ``payload`` is what Discord returns, ``request`` what the bot sent."""

    payload: JSON
    request: RecordedCall | None = None
    edits: list[RecordedCall] = field(default_factory=list)
    deleted: bool = False
    interaction_id: int | None = None

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def author_id(self) -> int:
        return int(self.payload["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.payload.get("content") or "")

    @property
    def embeds(self) -> list[JSON]:
        return list(self.payload.get("embeds") or [])

    @property
    def components(self) -> list[JSON]:
        return list(self.payload.get("components") or [])

    @property
    def attachments(self) -> list[JSON]:
        return list(self.payload.get("attachments") or [])

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def body(self) -> JSON:
        """The JSON the bot last sent for this message (creation or latest edit).

        For an interaction callback that is the callback's ``data``, not the ``{type, data}`` wrapper.
        """
        for call in reversed([c for c in (self.request, *self.edits) if c is not None]):
            body = call.json
            if call.route.endswith("/callback") and isinstance(body, dict):
                body = body.get("data")
            if isinstance(body, dict) and body:
                return body
        return {}

    @property
    def allowed_mentions(self) -> JSON | None:
        value = self.body.get("allowed_mentions")
        return value if isinstance(value, dict) else None

    @property
    def files(self) -> list[UploadedFile]:
        """Every file part uploaded for this message, creation first."""
        return [f for c in (self.request, *self.edits) if c is not None for f in c.files]

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in _walk_components(self.components) if "custom_id" in c]

    def __repr__(self) -> str:
        return f"<FakeMessage id={self.id} channel={self.channel_id} content={self.content!r}>"


@dataclass(eq=False)
class CallbackRecord:
    """The interaction callback the bot posted, and how long after dispatch it arrived."""

    type: int
    data: JSON
    call: RecordedCall
    elapsed: float
    message: FakeMessage | None = None

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def content(self) -> str | None:
        value = self.data.get("content")
        return None if value is None else str(value)

    @property
    def embeds(self) -> list[JSON]:
        return list(self.data.get("embeds") or [])

    @property
    def components(self) -> list[JSON]:
        return list(self.data.get("components") or [])

    @property
    def files(self) -> list[UploadedFile]:
        return self.call.files

    @property
    def choices(self) -> list[JSON]:
        return list(self.data.get("choices") or [])


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched; await its callback and followups from a test."""

    id: int
    token: str
    type: int
    payload: JSON
    guild_id: int | None
    channel_id: int
    user_id: int
    dispatched_at: float
    fake: FakeDiscord = field(repr=False)
    callback: CallbackRecord | None = None
    original_message_id: int | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    #: The gateway sessions the interaction was sent to (every session of its guild's shard).
    delivered_to: list[str] = field(default_factory=list)
    #: Callback requests refused because the interaction was already acknowledged (400 40060).
    refused_callbacks: int = 0
    #: Who waits for this interaction's callback or followups: woken only when those change, so a
    #: burst of interactions awaited at once costs each REST call one wake-up, not one per waiter.
    waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    async def wait_callback(self, timeout: float = 5.0) -> CallbackRecord:
        """The callback (type 4/5/6/7/8/9), waiting for it if the bot has not answered yet."""
        return await self.fake._wait(
            lambda: self.callback, timeout, f"the callback of interaction {self.id}", waiters=self.waiters
        )

    async def wait_followup(self, index: int = 0, timeout: float = 5.0) -> FakeMessage:
        """The ``index``-th followup; after a deferral the first one replaces the loading message."""
        return await self.fake._wait(
            lambda: self.followups[index] if len(self.followups) > index else None,
            timeout,
            f"followup #{index} of interaction {self.id}",
            waiters=self.waiters,
        )

    def changed(self) -> None:
        """Wake whoever waits for this interaction (its callback or a followup arrived)."""
        waiters = self.waiters[:]
        self.waiters.clear()  # in place: a waiter's loop holds this very list (see FakeDiscord._wait)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def original(self) -> FakeMessage | None:
        """The original response message (for a component interaction: the message clicked on)."""
        if self.original_message_id is None:
            return None
        return self.fake.messages.get(self.original_message_id)

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        """The original response once it satisfies ``predicate`` (e.g. no longer loading)."""

        def check() -> FakeMessage | None:
            message = self.original
            if message is None or (predicate is not None and not predicate(message)):
                return None
            return message

        return await self.fake._wait(check, timeout, f"the original response of interaction {self.id}")


@dataclass(eq=False)
class Fault:
    """An injected REST failure; it answers the next ``remaining`` matching requests."""

    method: str
    pattern: str
    status: int
    code: int | None
    message: str | None
    remaining: int
    retry_after: float | None
    is_global: bool = False
    hits: list[RecordedCall] = field(default_factory=list)

    def cancel(self) -> None:
        self.remaining = 0


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    accepts_dms: bool = True

    def to_payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
        }


@dataclass(eq=False)
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    def to_payload(self) -> JSON:
        payload: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            payload["tags"] = {"bot_id": str(self.bot_id)}
        return payload


@dataclass
class Overwrite:
    """A channel permission overwrite; ``type`` 0 targets a role (or @everyone = guild id), 1 a member."""

    id: int
    type: int = 0
    allow: int = 0
    deny: int = 0

    def to_payload(self) -> JSON:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(eq=False)
class FakeChannel:
    id: int
    name: str
    guild_id: int | None
    type: int = 0
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    parent_id: int | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    rate_limit_per_user: int = 0
    recipient_id: int | None = None
    last_message_id: int | None = None
    deleted: bool = False


@dataclass(eq=False)
class FakeMember:
    guild_id: int
    user_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=_now_iso)

    @property
    def id(self) -> int:
        return self.user_id


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    upload_limit: int | None = None
    locale: str = "en-US"
    features: list[str] = field(default_factory=list)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)

    @property
    def filesize_limit(self) -> int:
        """What Discord accepts per file here: an explicit override, or the boost tier's limit."""
        if self.upload_limit is not None:
            return self.upload_limit
        return TIER_UPLOAD_LIMITS.get(self.premium_tier, 10 * MIB)


def _walk_components(components: Iterable[JSON]) -> Iterator[JSON]:
    for component in components:
        yield component
        yield from _walk_components(component.get("components") or [])
        if isinstance(component.get("component"), dict):
            yield from _walk_components([component["component"]])
        if isinstance(component.get("accessory"), dict):
            yield from _walk_components([component["accessory"]])


def _id_of(value: Any) -> int:
    """A snowflake from an int, a digit string or a model object (``.id``)."""
    if isinstance(value, bool):
        raise TypeError(f"expected an id, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if hasattr(value, "id"):
        return int(value.id)
    raise TypeError(f"expected an id or a fake model object, got {value!r}")


def _sniff(data: bytes) -> tuple[str, str]:
    """(extension, content type) from magic bytes, for attachments given as bare bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif", "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    if data[4:8] == b"ftyp":
        return "mp4", "video/mp4"
    return "bin", "application/octet-stream"


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


def _route_matches(pattern: str, method: str, route: str, path: str) -> bool:
    """Match "METHOD /path-regex-or-template" (or just a path) against a call."""
    want_method, _, want_path = pattern.partition(" ") if " " in pattern else ("*", "", pattern)
    if want_method not in ("*", method.upper()):
        return False
    route_path = route.partition(" ")[2]
    return want_path == route_path or re.fullmatch(want_path, path) is not None


_CALL = web.RequestKey("call", RecordedCall)


@dataclass(eq=False)
class _Socket:
    ws: web.WebSocketResponse
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: JSON) -> bool:
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                await self.ws.send_str(_dumps(frame))
            except (ConnectionError, RuntimeError):
                return False
            return True


@dataclass(eq=False)
class _GatewaySession:
    id: str
    identify: JSON
    socket: _Socket | None = None
    seq: int = 0
    history: list[JSON] = field(default_factory=list)
    unsent: list[JSON] = field(default_factory=list)
    invalid: bool = False

    @property
    def shard(self) -> tuple[int, int]:
        """``(shard_id, shard_count)`` as identified (``(0, 1)``: unsharded)."""
        shard = self.identify.get("shard") or [0, 1]
        return int(shard[0]), int(shard[1])

    def serves(self, guild_id: int | None) -> bool:
        """Whether Discord sends this session the events of ``guild_id`` (DMs go to shard 0)."""
        shard_id, count = self.shard
        return shard_id == (0 if guild_id is None else (guild_id >> 22) % count)


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------


class FakeDiscord:
    """Discord's gateway and REST API on 127.0.0.1, with a small model a test can shape.

    Use it as ``async with FakeDiscord() as fake:``, or the ``fake_discord`` fixture from
    ``tests.fakes.fixtures`` which also builds the default guild (see :meth:`add_default_guild`).
    Close the bot before the fake: a bot whose Discord vanishes keeps reconnecting.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        bot_name: str = "Test Bot",
        heartbeat_interval_ms: int = 45_000,
        ack_deadline: float | None = 3.0,
        enforce_permissions: bool = True,
        nonce_window: float = 300.0,
    ) -> None:
        """``token=None`` accepts any bot token; ``ack_deadline`` is Discord's three-second rule."""
        self.host = host
        self.port = port
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_deadline = ack_deadline
        self.enforce_permissions = enforce_permissions
        self.nonce_window = nonce_window

        self._ids = _Snowflakes()
        self.bot_user = FakeUser(self._ids.next(), bot_name.lower().replace(" ", "-"), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.application_flags = 0
        self.app_owner = FakeUser(self._ids.next(), "app-owner", "App Owner")
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        #: The same interactions by token (a webhook call names its interaction by token only).
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.calls: list[RecordedCall] = []
        self.faults: list[Fault] = []
        self.identify_payloads: list[JSON] = []
        self.gateway_connections: list[dict[str, str]] = []
        self.gateway_received: list[JSON] = []
        self.resume_count = 0
        self.internal_errors: list[BaseException] = []
        #: What ``GET /gateway/bot`` recommends (an ``AutoShardedBot`` without a shard count runs these).
        self.recommended_shards = 1
        #: Interactions still to be acknowledged by "another process" before the bot sees them.
        self._answer_elsewhere = 0

        # Filled by add_default_guild() (the fake_discord fixture calls it).
        self.guild_id = 0
        self.owner_id = 0
        self.admin_id = 0
        self.member_id = 0
        self.channel_ids: dict[str, int] = {}
        self.role_ids: dict[str, int] = {}

        #: Whether the bot has the privileged Message Content intent (see :meth:`_as_fetched`). On by
        #: default, as in the fake's other answers; a test of what a bot without it sees turns it off.
        self.message_content_intent = True

        self._commands: dict[int | None, dict[int, JSON]] = {}
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._dm_by_user: dict[int, int] = {}
        self._sessions: dict[str, _GatewaySession] = {}
        self._session: _GatewaySession | None = None
        self._sockets: set[_Socket] = set()
        self._ready = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the HTTP and WebSocket server (port 0 picks a free port)."""
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * MIB)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self._bound_port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close gateway sockets (code 1001), stop the server and background tasks; idempotent."""
        for sock in list(self._sockets):
            with contextlib.suppress(Exception):
                await sock.ws.close(code=1001, message=b"fake discord is shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for waiter in [*self._waiters, *(w for i in self.interactions.values() for w in i.waiters)]:
            if not waiter.done():
                waiter.cancel()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("FakeDiscord is not started; await start() first")
        return f"http://{self.host}:{self._bound_port}"

    @property
    def api_base(self) -> str:
        """What ``Route.BASE`` should be: ``http://127.0.0.1:PORT/api/v10``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What ``DEFAULT_GATEWAY`` should be: ``ws://127.0.0.1:PORT/gateway``."""
        return f"ws://{self.host}:{self._bound_port}/gateway"

    @property
    def bot_id(self) -> int:
        return self.bot_user.id

    @property
    def connected(self) -> bool:
        """Whether a bot is identified (or resumed) on an open gateway socket."""
        return self._ready.is_set()

    # ---------------------------------------------------------------- model

    def add_user(self, name: str, *, user_id: int | None = None, bot: bool = False) -> FakeUser:
        user = FakeUser(user_id or self._ids.next(), name, name.title(), bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        guild_id: int | None = None,
        owner_id: int | None = None,
        premium_tier: int = 0,
        upload_limit: int | None = None,
        locale: str = "en-US",
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
    ) -> FakeGuild:
        """A guild with @everyone, an owner (created unless given) and the bot with its managed role."""
        gid = guild_id or self._ids.next()
        if owner_id is None:
            owner_id = self.add_user(f"{name.lower().replace(' ', '-')}-owner").id
        guild = FakeGuild(gid, name, owner_id, premium_tier, upload_limit, locale)
        self.guilds[gid] = guild
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", everyone_permissions, position=0)
        bot_role = FakeRole(
            self._ids.next(), gid, self.bot_user.global_name or "bot", bot_permissions, 1, managed=True
        )
        bot_role.bot_id = self.bot_id
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot_id] = FakeMember(gid, self.bot_id, [bot_role.id])
        guild.members[owner_id] = FakeMember(gid, owner_id, [])
        self._emit("GUILD_CREATE", self._guild_payload(guild))
        return guild

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        type: int = 0,
        topic: str | None = None,
        overwrites: Iterable[Overwrite] = (),
        parent_id: int | None = None,
        nsfw: bool = False,
        channel_id: int | None = None,
    ) -> FakeChannel:
        guild = self.guilds[guild_id]
        channel = FakeChannel(
            channel_id or self._ids.next(),
            name,
            guild_id,
            type,
            position=len(guild.channels),
            topic=topic,
            nsfw=nsfw,
            parent_id=parent_id,
            overwrites=list(overwrites),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self._emit("CHANNEL_CREATE", self._channel_payload(channel))
        return channel

    def add_role(
        self,
        guild_id: int,
        name: str,
        *,
        permissions: int = 0,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        role_id: int | None = None,
    ) -> FakeRole:
        guild = self.guilds[guild_id]
        role = FakeRole(
            role_id or self._ids.next(),
            guild_id,
            name,
            int(permissions),
            position=len(guild.roles),
            color=color,
            hoist=hoist,
            mentionable=mentionable,
        )
        guild.roles[role.id] = role
        self._emit("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": role.to_payload()})
        return role

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        name: str = "member",
        *,
        roles: Iterable[int | FakeRole] = (),
        permissions: int | None = None,
        nick: str | None = None,
        bot: bool = False,
    ) -> FakeMember:
        """A member (and its user, if new); ``permissions`` gives them a role of their own with those bits."""
        guild = self.guilds[guild_id]
        user = self.users.get(user_id) if user_id is not None else None
        if user is None:
            user = self.add_user(name, user_id=user_id, bot=bot)
        role_ids = [_id_of(r) for r in roles]
        if permissions is not None:
            role_ids.append(self.add_role(guild_id, f"{name} permissions", permissions=permissions).id)
        member = FakeMember(guild_id, user.id, role_ids, nick)
        guild.members[user.id] = member
        self._emit("GUILD_MEMBER_ADD", {"guild_id": str(guild_id), **self._member_payload(member)})
        return member

    def add_default_guild(self) -> FakeGuild:
        """The world most tests want: "Test Guild" with #videos and #general, an admin, a member.

        Sets ``guild_id``, ``owner_id``, ``channel_ids["videos"|"general"]``, ``role_ids["@everyone"|
        "Admin"|"bot"]``, ``admin_id`` (not the owner: Manage Server + Manage Messages through the
        "Admin" role, so permission checks are real) and ``member_id`` (plain @everyone rights).
        """
        guild = self.add_guild("Test Guild")
        self.guild_id, self.owner_id = guild.id, guild.owner_id
        for name in ("videos", "general"):
            self.channel_ids[name] = self.add_channel(guild.id, name, topic=f"#{name}").id
        admin_role = self.add_role(
            guild.id, "Admin", permissions=Permission.MANAGE_GUILD | Permission.MANAGE_MESSAGES, hoist=True
        )
        self.role_ids = {
            "@everyone": guild.id,
            "Admin": admin_role.id,
            "bot": guild.members[self.bot_id].roles[0],
        }
        self.admin_id = self.add_member(guild.id, name="admin", roles=[admin_role]).user_id
        self.member_id = self.add_member(guild.id, name="member").user_id
        return guild

    def set_premium_tier(self, guild_id: int, tier: int) -> None:
        """Change the boost tier (``guild.filesize_limit`` in discord.py follows it)."""
        self.guilds[guild_id].premium_tier = tier
        self._emit("GUILD_UPDATE", self._guild_payload(self.guilds[guild_id], full=False))

    def set_upload_limit(self, guild_id: int, limit: int | None) -> None:
        """Override the per-file upload limit Discord enforces here and reports in interactions."""
        self.guilds[guild_id].upload_limit = limit

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel: REST answers 404 10003 for it and the bot gets CHANNEL_DELETE."""
        channel = self.channels[channel_id]
        channel.deleted = True
        if channel.guild_id is not None:
            self.guilds[channel.guild_id].channels.pop(channel_id, None)
        self._emit("CHANNEL_DELETE", self._channel_payload(channel))

    def set_channel_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0, member: bool = False
    ) -> None:
        channel = self.channels[channel_id]
        channel.overwrites = [o for o in channel.overwrites if o.id != target_id]
        channel.overwrites.append(Overwrite(target_id, 1 if member else 0, int(allow), int(deny)))
        self._emit("CHANNEL_UPDATE", self._channel_payload(channel))

    def set_role_permissions(self, guild_id: int, role_id: int, permissions: int) -> None:
        role = self.guilds[guild_id].roles[role_id]
        role.permissions = int(permissions)
        self._emit("GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": role.to_payload()})

    def set_bot_permissions(self, guild_id: int, permissions: int) -> None:
        """Change the bot's managed role, e.g. to take away Attach Files."""
        self.set_role_permissions(guild_id, self.guilds[guild_id].members[self.bot_id].roles[0], permissions)

    def block_dms(self, user_id: int, blocked: bool = True) -> None:
        """Make DMs to a user fail with 403 50007, as when they close DMs."""
        self.users[user_id].accepts_dms = not blocked

    def add_message(
        self,
        channel_id: int,
        author_id: int,
        content: str = "",
        *,
        embeds: list[JSON] | None = None,
        attachments: Iterable[AttachmentSpec] = (),
    ) -> FakeMessage:
        """A message someone else posted (to reply to, or press buttons on, or use an app on), with
        ``attachments`` as files on Discord's CDN (their ``content_type`` guessed from the name when
        not given, as Discord does); not dispatched."""
        channel = self.channels[channel_id]
        specs = list(attachments)
        files = [
            UploadedFile(f"files[{n}]", spec.filename, spec.content_type or "", spec.data)
            for n, spec in enumerate(specs)
        ]
        message = self._create_message(
            channel, {"content": content, "embeds": embeds or []}, files, call=None, author_id=author_id
        )
        for attachment, spec in zip(message.payload["attachments"], specs, strict=True):
            if spec.content_type:
                attachment["content_type"] = spec.content_type
        return message

    def permissions_for(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        """Discord's permission algorithm: owner, roles, administrator, then channel overwrites."""
        guild = self.guilds[guild_id]
        member = guild.members[user_id]
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        perms = guild.roles[guild.id].permissions
        for role_id in member.roles:
            if role_id in guild.roles:
                perms |= guild.roles[role_id].permissions
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        if channel_id is None:
            return perms
        by_target = {o.id: o for o in self.channels[channel_id].overwrites}
        everyone = by_target.get(guild.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.roles:
            overwrite = by_target.get(role_id)
            if overwrite is not None and overwrite.type == 0:
                allow |= overwrite.allow
                deny |= overwrite.deny
        perms = (perms & ~deny) | allow
        own = by_target.get(user_id)
        if own is not None and own.type == 1:
            perms = (perms & ~own.deny) | own.allow
        if not perms & Permission.VIEW_CHANNEL:
            return 0
        return perms

    # ---------------------------------------------------------------- queries and waiting

    def calls_to(self, method: str, path_regex: str) -> list[RecordedCall]:
        """Calls whose method matches (``"*"`` for any) and whose path fully matches the regex.

        The route template also matches: ``calls_to("POST", "/channels/{channel_id}/messages")``.
        """
        pattern = f"{method.upper()} {path_regex}"
        return [c for c in self.calls if _route_matches(pattern, c.method, c.route, c.path)]

    def messages_in(
        self, channel_id: int, *, include_ephemeral: bool = True, include_deleted: bool = False
    ) -> list[FakeMessage]:
        """Messages in a channel, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id
            and (include_ephemeral or not m.ephemeral)
            and (include_deleted or not m.deleted)
        ]

    def synced_commands(self, guild_id: int | None = None) -> list[JSON]:
        """The command schema last synced globally (``None``) or to a guild, as Discord stores it."""
        return [copy.deepcopy(c) for c in self._commands.get(guild_id, {}).values()]

    def attachment_bytes(self, attachment: JSON | str) -> bytes:
        """The bytes behind an attachment payload or URL served by the fake."""
        url = attachment if isinstance(attachment, str) else attachment["url"]
        return self._cdn[yarl.URL(url).path][0]

    async def wait_for_call(
        self, predicate: Callable[[RecordedCall], bool] | str, timeout: float = 5.0
    ) -> RecordedCall:
        """The first recorded call (past or future) matching a predicate or ``"METHOD /path"`` pattern."""
        check: Callable[[RecordedCall], bool]
        if isinstance(predicate, str):
            pattern = predicate

            def check(call: RecordedCall) -> bool:
                return _route_matches(pattern, call.method, call.route, call.path)

        else:
            check = predicate
        return await self._wait(
            lambda: next((c for c in self.calls if check(c)), None), timeout, f"a call matching {predicate!r}"
        )

    async def wait_for_message(
        self, channel_id: int, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        """The first live message in a channel (past or future) matching the predicate."""
        return await self._wait(
            lambda: next(
                (m for m in self.messages_in(channel_id) if predicate is None or predicate(m)),
                None,
            ),
            timeout,
            f"a message in channel {channel_id}",
        )

    async def wait_until_ready(self, timeout: float = 5.0, *, guild_id: int | None = None) -> None:
        """Wait until a bot has identified (READY and every GUILD_CREATE written) or resumed; with
        ``guild_id``, until a session of that guild's shard has."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
            if guild_id is not None:
                await self._wait(
                    lambda: self._live_for(guild_id) or None, timeout, f"a shard of guild {guild_id}"
                )
        except TimeoutError:
            raise TimeoutError(
                f"no bot identified on {self.gateway_url} within {timeout}s "
                f"(gateway connections: {self.gateway_connections}; last calls: {self._recent_calls()})"
            ) from None

    def sessions(self) -> list[tuple[str, tuple[int, int], bool]]:
        """Every gateway session still valid: its id, ``(shard_id, shard_count)`` and whether its socket
        is open."""
        return [(x.id, x.shard, x.socket is not None) for x in self._sessions.values() if not x.invalid]

    def answer_elsewhere(self, count: int = 1) -> None:
        """The next ``count`` interactions are acknowledged by another process (a deferral recorded
        before the bot sees them), as when two processes receive the same interaction: the bot's own
        callback then gets Discord's 400 40060."""
        self._answer_elsewhere += count

    def _targets(self, guild_id: int | None) -> list[_GatewaySession]:
        """The sessions Discord sends a guild's events to: every valid one of its shard (a session whose
        socket dropped keeps them for its RESUME)."""
        return [x for x in self._sessions.values() if not x.invalid and x.serves(guild_id)]

    def _live_for(self, guild_id: int | None) -> list[_GatewaySession]:
        return [x for x in self._targets(guild_id) if x.socket is not None and not x.socket.ws.closed]

    def _refresh_ready(self) -> None:
        if any(x.socket is not None and not x.socket.ws.closed for x in self._sessions.values()):
            self._ready.set()
        else:
            self._ready.clear()

    async def wait_until_disconnected(self, timeout: float = 5.0) -> None:
        """Wait until every gateway socket is closed (after ``bot.close()``)."""
        await self._wait(
            lambda: True if not self._sockets else None, timeout, "every gateway socket to close"
        )

    async def _wait(
        self,
        check: Callable[[], T | None],
        timeout: float,
        what: str,
        *,
        waiters: list[asyncio.Future[None]] | None = None,
    ) -> T:
        """Until ``check()`` returns something, re-checked on every change the fake notifies (or only
        on those of one interaction, when its ``waiters`` are given)."""
        waiting = self._waiters if waiters is None else waiters
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; {self._recent_calls()}")
            waiter: asyncio.Future[None] = loop.create_future()
            waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    waiting.remove(waiter)

    def _notify(self) -> None:
        waiters = self._waiters[:]
        self._waiters.clear()  # in place: a waiter's loop holds this very list (see _wait)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _recent_calls(self) -> str:
        recent = ", ".join(f"{c.method} {c.path} -> {c.status}" for c in self.calls[-8:])
        return f"last calls: [{recent}]"

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self,
        pattern: str,
        status: int,
        *,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``pattern`` with a Discord-style error.

        ``pattern`` is ``"METHOD /path"`` (or just ``"/path"`` for any method) where the path is a
        route template (``/channels/{channel_id}/messages``) or a regex over the concrete path
        (``/channels/\\d+/messages``). A 429 carries ``retry_after`` (default 0.05 s), the
        ``X-RateLimit-*``/``Retry-After`` headers and ``Via`` (which discord.py requires to retry).
        Note that discord.py retries 500/502/504 itself, sleeping 1 s, 3 s, ...
        """
        method, _, path = pattern.partition(" ") if " " in pattern else ("*", "", pattern)
        if status == 429 and retry_after is None:
            retry_after = 0.05
        fault = Fault(method.upper(), path, status, code, message, times, retry_after, is_global)
        self.faults.append(fault)
        return fault

    def _take_fault(self, call: RecordedCall) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and _route_matches(
                f"{fault.method} {fault.pattern}", call.method, call.route, call.path
            ):
                fault.remaining -= 1
                fault.hits.append(call)
                return fault
        return None

    def _fault_response(self, fault: Fault, call: RecordedCall) -> web.Response:
        if fault.status == 429:
            retry_after = fault.retry_after or 0.0
            body: JSON = {
                "message": fault.message or "You are being rate limited.",
                "retry_after": retry_after,
                "global": fault.is_global,
            }
            if fault.code is not None:
                body["code"] = fault.code
            headers = {
                "Retry-After": str(max(1, int(retry_after + 0.999))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": self._bucket(call.route),
                "X-RateLimit-Scope": "global" if fault.is_global else "user",
                "Via": "1.1 google",
            }
            if fault.is_global:
                headers["X-RateLimit-Global"] = "true"
            return self._json(call, body, 429, headers=headers)
        error = _ApiError(fault.status, fault.code or 0, fault.message)
        return self._error_response(call, error)

    # ---------------------------------------------------------------- interactions

    async def send_command(
        self,
        name: str,
        *,
        subcommand: str | None = None,
        options: Mapping[str, Any] | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int,
        attachments: Mapping[str, bytes | AttachmentSpec] | None = None,
        app_permissions: int | None = None,
        locale: str = "en-US",
        dm: bool = False,
        validate: bool = True,
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Dispatch a slash command (type 2) as Discord would build it.

        ``subcommand`` is ``"sub"`` or ``"group sub"``. Option types come from the synced schema when
        the command was synced (else from the Python values); users, members, channels, roles and
        attachments are put in ``resolved``. With ``validate`` the fake refuses what Discord's client
        would not send (unknown or missing required options, a value outside the choices).
        """
        await self.wait_until_ready(timeout)
        guild, channel = self._place(guild_id, channel_id, user_id, dm=dm)
        schema = self._find_command(name, guild.id if guild else None, 1)
        contexts = (schema or {}).get("contexts")
        if validate and guild is None and contexts is not None and BOT_DM_CONTEXT not in contexts:
            raise ValueError(f"/{name} is not offered in direct messages (its contexts are {contexts})")
        values: dict[str, Any] = dict(options or {})
        for option_name, attachment in (attachments or {}).items():
            values[option_name] = attachment if isinstance(attachment, AttachmentSpec) else bytes(attachment)
        resolved: JSON = {}
        built = self._build_options(
            schema, subcommand, values, resolved, guild, channel, user_id, validate=validate, focused=None
        )
        data: JSON = {
            "id": schema["id"] if schema else str(self._ids.next()),
            "name": name,
            "type": 1,
        }
        if schema and schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction_payload(
            APPLICATION_COMMAND, guild, channel, user_id, app_permissions, locale
        )
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    async def send_autocomplete(
        self,
        name: str,
        *,
        focused: str,
        subcommand: str | None = None,
        options: Mapping[str, Any] | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int,
        locale: str = "en-US",
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Dispatch an autocomplete request (type 4) for the ``focused`` option; the answer is type 8."""
        await self.wait_until_ready(timeout)
        guild, channel = self._place(guild_id, channel_id, user_id, dm=False)
        schema = self._find_command(name, guild.id if guild else None, 1)
        resolved: JSON = {}
        built = self._build_options(
            schema,
            subcommand,
            dict(options or {}),
            resolved,
            guild,
            channel,
            user_id,
            validate=False,
            focused=focused,
        )
        data: JSON = {"id": schema["id"] if schema else str(self._ids.next()), "name": name, "type": 1}
        if schema and schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        data["options"] = built
        payload = self._interaction_payload(AUTOCOMPLETE, guild, channel, user_id, None, locale)
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    async def send_component(
        self,
        custom_id: str,
        *,
        message_id: int,
        user_id: int,
        channel_id: int | None = None,
        guild_id: int | None = None,
        component_type: int = 2,
        values: Iterable[str] | None = None,
        locale: str = "en-US",
        validate: bool = True,
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Dispatch a component interaction (type 3): a button press by default, or a select with values.

        If the fake holds the message, the interaction carries it and, with ``validate``, the
        ``custom_id`` must be on it and enabled. For a message the fake never saw (a persistent view
        after a restart), pass ``channel_id`` and a stub message is sent.
        """
        await self.wait_until_ready(timeout)
        stored = self.messages.get(message_id)
        if stored is not None:
            channel_id = stored.channel_id
            if validate:
                found = [c for c in _walk_components(stored.components) if c.get("custom_id") == custom_id]
                if not found:
                    raise ValueError(
                        f"message {message_id} has no component {custom_id!r}: {stored.custom_ids()}"
                    )
                if found[0].get("disabled"):
                    raise ValueError(f"component {custom_id!r} is disabled; Discord's client cannot press it")
        elif channel_id is None:
            raise ValueError("the fake does not know this message; pass channel_id")
        guild, channel = self._place(guild_id, channel_id, user_id, dm=False)
        payload = self._interaction_payload(MESSAGE_COMPONENT, guild, channel, user_id, None, locale)
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = [str(v) for v in values]
        payload["data"] = data
        if stored is not None:
            payload["message"] = copy.deepcopy(stored.payload)
        else:
            component: JSON = {"type": component_type, "custom_id": custom_id}
            if component_type == 2:
                component.update(style=2, label=custom_id)
            elif component_type == 3:
                component["options"] = [{"label": v, "value": v} for v in data.get("values", [])]
            payload["message"] = self._stub_message(message_id, channel.id, component)
        return await self._dispatch_interaction(payload, original_message_id=message_id)

    async def send_modal_submit(
        self,
        custom_id: str,
        values: Mapping[str, str | list[str]],
        *,
        user_id: int,
        channel_id: int | None = None,
        guild_id: int | None = None,
        message_id: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Dispatch a modal submission (type 5) shaped like the modal the bot last opened with this id.

        Rows (type 1) and labels (type 18) are mirrored; text inputs get ``value``, selects ``values``.
        """
        await self.wait_until_ready(timeout)
        if message_id is not None and message_id in self.messages:
            channel_id = self.messages[message_id].channel_id
        guild, channel = self._place(guild_id, channel_id, user_id, dm=False)
        modal = self._find_modal(custom_id)
        components = self._modal_components(modal, values, validate=validate)
        payload = self._interaction_payload(MODAL_SUBMIT, guild, channel, user_id, None, locale)
        payload["data"] = {"custom_id": custom_id, "components": components}
        if message_id is not None:
            stored = self.messages.get(message_id)
            payload["message"] = (
                copy.deepcopy(stored.payload) if stored else self._stub_message(message_id, channel.id)
            )
        return await self._dispatch_interaction(payload, original_message_id=message_id)

    async def send_message_command(
        self,
        name: str,
        *,
        message_id: int,
        user_id: int,
        app_permissions: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Dispatch a message context-menu command (type 2, command type 3) on a message the fake holds,
        used in that message's channel: ``data`` carries ``target_id`` and the message in
        ``resolved.messages`` (whole, as Discord sends it even to an app without the Message Content
        intent). With ``validate`` the command must have been synced as a message command."""
        await self.wait_until_ready(timeout)
        stored = self.messages.get(message_id)
        if stored is None or stored.deleted or stored.ephemeral:
            raise ValueError(f"the fake holds no message {message_id} a member could open a menu on")
        guild, channel = self._place(None, stored.channel_id, user_id, dm=False)
        schema = self._find_command(name, guild.id if guild else None, 3)
        if schema is None and validate:
            raise ValueError(f"no message command {name!r} was synced")
        if schema is not None and validate and guild is None and schema.get("contexts") == [0]:
            raise ValueError(f"{name!r} is for servers only; Discord does not offer it here")
        data: JSON = {
            "id": schema["id"] if schema else str(self._ids.next()),
            "name": name,
            "type": 3,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): copy.deepcopy(stored.payload)}},
        }
        if schema and schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        payload = self._interaction_payload(
            APPLICATION_COMMAND, guild, channel, user_id, app_permissions, locale
        )
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    def _place(
        self, guild_id: int | None, channel_id: int | None, user_id: int, *, dm: bool
    ) -> tuple[FakeGuild | None, FakeChannel]:
        """Where an interaction happens: the guild and channel, defaulted when unambiguous."""
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}; add_member() first")
        if dm:
            return None, self._dm_channel(user_id)
        if channel_id is not None:
            channel = self.channels[channel_id]
            if channel.guild_id is None:
                return None, channel
            if guild_id is not None and guild_id != channel.guild_id:
                raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
            guild = self.guilds[channel.guild_id]
        else:
            if guild_id is None:
                if len(self.guilds) != 1:
                    raise ValueError("several guilds: pass guild_id or channel_id")
                guild_id = next(iter(self.guilds))
            guild = self.guilds[guild_id]
            texts = [c for c in guild.channels.values() if c.type == 0]
            if not texts:
                raise ValueError(f"guild {guild_id} has no text channel")
            channel = texts[0]
        if user_id not in guild.members:
            raise ValueError(f"user {user_id} is not a member of guild {guild.id}")
        return guild, channel

    def _interaction_payload(
        self,
        itype: int,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user_id: int,
        app_permissions: int | None,
        locale: str,
    ) -> JSON:
        payload: JSON = {
            "id": str(self._ids.next()),
            "application_id": str(self.application_id),
            "type": itype,
            "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48),
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "channel": self._channel_payload(channel),
            "channel_id": str(channel.id),
        }
        if guild is not None:
            member = guild.members[user_id]
            if app_permissions is None:
                app_permissions = self.permissions_for(guild.id, self.bot_id, channel.id)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": guild.locale, "features": list(guild.features)},
                guild_locale=guild.locale,
                member=self._member_payload(
                    member, permissions=self.permissions_for(guild.id, user_id, channel.id)
                ),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
                attachment_size_limit=guild.filesize_limit,
            )
        else:
            payload.update(
                user=self.users[user_id].to_payload(),
                authorizing_integration_owners={"0": "0"},
                context=1,
                attachment_size_limit=10 * MIB,
            )
            if app_permissions is None:
                app_permissions = DM_APP_PERMISSIONS
        payload["app_permissions"] = str(int(app_permissions))
        return payload

    async def _dispatch_interaction(
        self, payload: JSON, *, original_message_id: int | None = None
    ) -> FakeInteraction:
        guild_id = payload.get("guild_id")
        gid = int(guild_id) if guild_id else None
        if not self._sessions:
            raise RuntimeError("no bot is connected to the fake gateway")
        # A shard still connecting gets its guild's interaction once it has identified.
        targets = await self._wait(lambda: self._targets(gid) or None, 5.0, f"a session for guild {gid}")
        user = payload["member"]["user"] if "member" in payload else payload["user"]
        interaction = FakeInteraction(
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            payload=payload,
            guild_id=int(guild_id) if guild_id else None,
            channel_id=int(payload["channel_id"]),
            user_id=int(user["id"]),
            dispatched_at=time.monotonic(),
            fake=self,
            original_message_id=original_message_id,
        )
        self.interactions[interaction.id] = interaction
        self._interactions_by_token[interaction.token] = interaction
        if self._answer_elsewhere > 0:
            self._answer_elsewhere -= 1
            self._acknowledge_elsewhere(interaction)
        for session in targets:
            interaction.delivered_to.append(session.id)
            self._queue(session, "INTERACTION_CREATE", payload)
        for session in targets:
            await self._flush(session)
        return interaction

    def _acknowledge_elsewhere(self, interaction: FakeInteraction) -> None:
        """A deferral by some other process, recorded as if its callback had just arrived."""
        now = time.monotonic()
        call = RecordedCall(
            method="POST",
            path=f"/interactions/{interaction.id}/{{token}}/callback",
            route="POST /interactions/{webhook_id}/{webhook_token}/callback",
            params={},
            query={},
            headers={},
            authorized=True,
            json={"type": 5, "data": {"flags": EPHEMERAL}},
            form={},
            files=[],
            at=now,
            status=204,
        )
        channel = self.channels[interaction.channel_id]
        message = self._create_message(
            channel, {}, [], call=call, interaction=interaction, flags=LOADING | EPHEMERAL, message_type=20
        )
        interaction.original_message_id = message.id
        interaction.callback = CallbackRecord(
            5, {"flags": EPHEMERAL}, call, now - interaction.dispatched_at, message
        )

    def _find_command(self, name: str, guild_id: int | None, ctype: int) -> JSON | None:
        for scope in (guild_id, None) if guild_id is not None else (None,):
            for command in self._commands.get(scope, {}).values():
                if command["name"] == name and command.get("type", 1) == ctype:
                    return command
        return None

    def _find_modal(self, custom_id: str) -> JSON | None:
        for interaction in reversed(list(self.interactions.values())):
            callback = interaction.callback
            if callback is not None and callback.type == 9 and callback.data.get("custom_id") == custom_id:
                return callback.data
        return None

    def _build_options(
        self,
        schema: JSON | None,
        subcommand: str | None,
        values: dict[str, Any],
        resolved: JSON,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user_id: int,
        *,
        validate: bool,
        focused: str | None,
    ) -> list[JSON]:
        schema_options: list[JSON] | None = (schema.get("options") or []) if schema else None
        path = subcommand.split() if subcommand else []
        wrappers: list[tuple[str, int]] = []
        for depth, part in enumerate(path):
            found = None
            if schema_options is not None:
                found = next(
                    (o for o in schema_options if o["name"] == part and o["type"] in (1, 2)),
                    None,
                )
                if found is None and validate:
                    raise ValueError(
                        f"{part!r} is not a subcommand here: {[o['name'] for o in schema_options]}"
                    )
            kind = found["type"] if found else (SUB_COMMAND_GROUP if depth < len(path) - 1 else SUB_COMMAND)
            wrappers.append((part, kind))
            schema_options = (found.get("options") or []) if found else None
        if validate and schema_options and any(o["type"] in (1, 2) for o in schema_options):
            raise ValueError(f"this command needs subcommand=, one of {[o['name'] for o in schema_options]}")

        leaf: list[JSON] = []
        by_name = {o["name"]: o for o in schema_options or []}
        for option_name, value in values.items():
            option_schema = by_name.get(option_name)
            if option_schema is None and schema_options is not None and validate:
                raise ValueError(f"unknown option {option_name!r}; the command has {sorted(by_name)}")
            kind = option_schema["type"] if option_schema else self._infer_type(value)
            encoded = self._encode_option(kind, value, resolved, guild, channel, user_id)
            if validate and option_schema is not None:
                self._check_option(option_schema, encoded)
            entry: JSON = {"name": option_name, "type": kind, "value": encoded}
            if focused == option_name:
                entry["focused"] = True
            leaf.append(entry)
        if validate:
            missing = [o["name"] for o in by_name.values() if o.get("required") and o["name"] not in values]
            if missing:
                raise ValueError(f"required options missing: {missing}")

        result = leaf
        for part, kind in reversed(wrappers):
            result = [{"name": part, "type": kind, "options": result}]
        return result

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return BOOLEAN
        if isinstance(value, int):
            return INTEGER
        if isinstance(value, float):
            return NUMBER
        if isinstance(value, (bytes, AttachmentSpec)):
            return ATTACHMENT
        if isinstance(value, (FakeUser, FakeMember)):
            return USER
        if isinstance(value, FakeChannel):
            return CHANNEL
        if isinstance(value, FakeRole):
            return ROLE
        return STRING

    def _encode_option(
        self,
        kind: int,
        value: Any,
        resolved: JSON,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user_id: int,
    ) -> Any:
        if kind == STRING:
            return str(value)
        if kind == INTEGER:
            return int(value)
        if kind == NUMBER:
            return float(value)
        if kind == BOOLEAN:
            return bool(value)
        if kind == ATTACHMENT:
            spec = value if isinstance(value, AttachmentSpec) else AttachmentSpec(bytes(value), filename="")
            if not spec.filename:
                extension, sniffed = _sniff(spec.data)
                spec = AttachmentSpec(spec.data, f"upload.{extension}", spec.content_type or sniffed)
            attachment = self._store_attachment(
                channel.id,
                spec.filename,
                spec.data,
                content_type=spec.content_type,
                description=spec.description,
                ephemeral=True,
                size=(spec.width, spec.height) if spec.width and spec.height else None,
            )
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        target = _id_of(value)
        if kind == MENTIONABLE:
            kind = USER if target in self.users else ROLE
        if kind == USER:
            if target not in self.users:
                raise ValueError(f"unknown user {target}")
            resolved.setdefault("users", {})[str(target)] = self.users[target].to_payload()
            if guild is not None and target in guild.members:
                member = self._member_payload(
                    guild.members[target],
                    with_user=False,
                    permissions=self.permissions_for(guild.id, target, channel.id),
                )
                resolved.setdefault("members", {})[str(target)] = member
        elif kind == CHANNEL:
            target_channel = self.channels[target]
            data = self._channel_payload(target_channel)
            if guild is not None and target_channel.guild_id == guild.id:
                data["permissions"] = str(self.permissions_for(guild.id, user_id, target))
            else:
                data["permissions"] = "0"
            resolved.setdefault("channels", {})[str(target)] = data
        elif kind == ROLE:
            if guild is None or target not in guild.roles:
                raise ValueError(f"unknown role {target}")
            resolved.setdefault("roles", {})[str(target)] = guild.roles[target].to_payload()
        return str(target)

    @staticmethod
    def _check_option(schema: JSON, value: Any) -> None:
        name = schema["name"]
        choices = schema.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"{name}={value!r} is not one of the choices {[c['value'] for c in choices]}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if schema.get("min_value") is not None and value < schema["min_value"]:
                raise ValueError(f"{name}={value} is below min_value {schema['min_value']}")
            if schema.get("max_value") is not None and value > schema["max_value"]:
                raise ValueError(f"{name}={value} is above max_value {schema['max_value']}")
        if isinstance(value, str) and schema["type"] == STRING:
            if schema.get("min_length") is not None and len(value) < schema["min_length"]:
                raise ValueError(f"{name} is shorter than min_length {schema['min_length']}")
            if schema.get("max_length") is not None and len(value) > schema["max_length"]:
                raise ValueError(f"{name} is longer than max_length {schema['max_length']}")

    @staticmethod
    def _modal_components(
        modal: JSON | None, values: Mapping[str, str | list[str]], *, validate: bool
    ) -> list[JSON]:
        def submitted(component: JSON) -> JSON | None:
            custom_id = component.get("custom_id")
            if custom_id is None:
                return None
            entry: JSON = {"type": component["type"], "custom_id": custom_id}
            if "id" in component:
                entry["id"] = component["id"]
            value = values.get(custom_id)
            if component["type"] == 4:
                if validate and component.get("required", True) and not value:
                    raise ValueError(f"text input {custom_id!r} is required")
                entry["value"] = value if isinstance(value, str) else ""
            else:
                entry["values"] = list(value) if isinstance(value, list) else ([value] if value else [])
            return entry

        if modal is None:
            return [
                {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
                for key, value in values.items()
            ]
        known = {c["custom_id"] for c in _walk_components(modal.get("components") or []) if "custom_id" in c}
        unknown = set(values) - known
        if validate and unknown:
            raise ValueError(f"the modal has no inputs {sorted(unknown)}; it has {sorted(known)}")
        result: list[JSON] = []
        for top in modal.get("components") or []:
            if top.get("type") == 1:
                children = [s for c in top.get("components") or [] if (s := submitted(c)) is not None]
                result.append({"type": 1, "components": children})
            elif top.get("type") == 18 and isinstance(top.get("component"), dict):
                inner = submitted(top["component"])
                if inner is not None:
                    result.append({"type": 18, "component": inner})
        return result

    def _stub_message(self, message_id: int, channel_id: int, component: JSON | None = None) -> JSON:
        """A bot message the fake never saw, carrying the clicked component (Discord always sends it,
        and discord.py rebuilds DynamicItems from it)."""
        return {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": 0,
            "content": "",
            "author": self.bot_user.to_payload(),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [{"type": 1, "components": [component]}] if component else [],
            "pinned": False,
            "flags": 0,
        }

    # ---------------------------------------------------------------- gateway

    async def dispatch_event(self, event: str, data: JSON) -> None:
        """Send any gateway dispatch (``GUILD_MEMBER_UPDATE``, ``MESSAGE_CREATE``...) to the bot (to the
        sessions of its guild's shard)."""
        guild_id = data.get("guild_id")
        targets = self._targets(int(guild_id) if guild_id else None)
        if not targets:
            raise RuntimeError("no bot is connected to the fake gateway")
        for session in targets:
            self._queue(session, event, data)
            await self._flush(session)

    async def drop_connection(self, code: int = 4000) -> None:
        """Close the bot's socket as a network failure would; discord.py reconnects and RESUMEs."""
        session = self._session
        if session is None or session.socket is None:
            raise RuntimeError("no bot is connected to the fake gateway")
        sock, session.socket = session.socket, None
        self._refresh_ready()
        await sock.ws.close(code=code, message=b"dropped by the fake")

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT; discord.py closes the socket and RESUMEs."""
        session = self._session
        if session is None or session.socket is None:
            raise RuntimeError("no bot is connected to the fake gateway")
        self._ready.clear()
        await session.socket.send({"op": 7, "d": None, "s": None, "t": None})

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9; with ``resumable=False`` discord.py identifies afresh (READY again)."""
        session = self._session
        if session is None or session.socket is None:
            raise RuntimeError("no bot is connected to the fake gateway")
        session.invalid = not resumable
        self._ready.clear()
        await session.socket.send({"op": 9, "d": resumable, "s": None, "t": None})

    def _emit(self, event: str, data: JSON) -> None:
        """Queue a dispatch from a synchronous model change, for the sessions of its guild's shard;
        written in order by the next flush."""
        raw = data.get("guild_id") or (data.get("id") if event.startswith("GUILD_") else None)
        for session in self._targets(int(raw) if raw else None):
            self._queue(session, event, data)
            self._spawn(self._flush(session))

    def _queue(self, session: _GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.history.append(frame)
        session.unsent.append(frame)

    async def _flush(self, session: _GatewaySession) -> None:
        sock = session.socket
        if sock is None:
            return
        async with sock.lock:
            while session.unsent and session.socket is sock and not sock.ws.closed:
                try:
                    await sock.ws.send_str(_dumps(session.unsent[0]))
                except (ConnectionError, RuntimeError):
                    return
                session.unsent.pop(0)

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        sock = _Socket(ws)
        self._sockets.add(sock)
        self.gateway_connections.append(dict(request.query))
        session: _GatewaySession | None = None
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-discord"]}
            await sock.send({"op": 10, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.gateway_received.append(frame)
                op = frame.get("op")
                if op == 1:
                    await sock.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    session = await self._identify(sock, frame.get("d") or {})
                elif op == 6:
                    session = await self._resume(sock, frame.get("d") or {})
                elif op == 8 and session is not None:
                    await self._request_members(session, frame.get("d") or {})
                elif op not in (3, 4):
                    await ws.close(code=4001, message=b"Unknown opcode.")
        finally:
            self._sockets.discard(sock)
            if session is not None and session.socket is sock:
                session.socket = None
                if ws.close_code in (1000, 1001):
                    session.invalid = True  # a clean close by the client ends the session
                self._refresh_ready()
            self._notify()
        return ws

    async def _identify(self, sock: _Socket, data: JSON) -> _GatewaySession | None:
        if self.token is not None and data.get("token") != self.token:
            await sock.ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.identify_payloads.append(data)
        session = _GatewaySession(secrets.token_hex(16), data, sock)
        self._sessions[session.id] = session
        self._session = session
        shard = list(session.shard)
        guilds = [g for g in self.guilds.values() if session.serves(g.id)]
        ready = {
            "v": 10,
            "user": {**self.bot_user.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": shard,
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        self._queue(session, "READY", ready)
        for guild in guilds:
            self._queue(session, "GUILD_CREATE", self._guild_payload(guild))
        await self._flush(session)
        self._ready.set()
        self._notify()
        return session

    async def _resume(self, sock: _Socket, data: JSON) -> _GatewaySession | None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or session.invalid or (self.token is not None and data.get("token") != self.token):
            await sock.send({"op": 9, "d": False, "s": None, "t": None})
            return None
        old = session.socket
        session.socket = sock
        if old is not None and not old.ws.closed:
            await old.ws.close(code=4000, message=b"session resumed elsewhere")
        seq = int(data.get("seq") or 0)
        session.unsent = [f for f in session.history if f["s"] > seq]
        self._queue(session, "RESUMED", {"_trace": ["fake-discord"]})
        await self._flush(session)
        self._session = session
        self.resume_count += 1
        self._ready.set()
        self._notify()
        return session

    async def _request_members(self, session: _GatewaySession, data: JSON) -> None:
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            members = [m for m in members if m.user_id in wanted]
        elif data.get("query"):
            prefix = str(data["query"]).lower()
            members = [m for m in members if self.users[m.user_id].username.lower().startswith(prefix)]
        chunk = {
            "guild_id": str(guild.id),
            "members": [self._member_payload(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._queue(session, "GUILD_MEMBERS_CHUNK", chunk)
        await self._flush(session)

    # ---------------------------------------------------------------- payloads

    def _member_payload(
        self, member: FakeMember, *, with_user: bool = True, permissions: int | None = None
    ) -> JSON:
        payload: JSON = {
            "roles": [str(r) for r in member.roles],
            "nick": member.nick,
            "avatar": None,
            "banner": None,
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = self.users[member.user_id].to_payload()
        if permissions is not None:
            payload["permissions"] = str(permissions)
        return payload

    def _channel_payload(self, channel: FakeChannel) -> JSON:
        if channel.guild_id is None:
            recipient = self.users[channel.recipient_id or 0]
            return {
                "id": str(channel.id),
                "type": channel.type,
                "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
                "recipients": [recipient.to_payload()],
                "flags": 0,
            }
        return {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "position": channel.position,
            "permission_overwrites": [o.to_payload() for o in channel.overwrites],
            "topic": channel.topic,
            "nsfw": channel.nsfw,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
            "rate_limit_per_user": channel.rate_limit_per_user,
            "flags": 0,
        }

    def _guild_payload(self, guild: FakeGuild, *, full: bool = True) -> JSON:
        payload: JSON = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": [r.to_payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": list(guild.features),
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": {0: 0, 1: 2, 2: 7, 3: 14}.get(guild.premium_tier, 0),
            "preferred_locale": guild.locale,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }
        if full:
            payload.update(
                joined_at=guild.members[self.bot_id].joined_at,
                large=False,
                unavailable=False,
                member_count=len(guild.members),
                members=[self._member_payload(m) for m in guild.members.values()],
                channels=[self._channel_payload(c) for c in guild.channels.values()],
                threads=[],
                presences=[],
                voice_states=[],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
                lazy=True,
            )
        return payload

    def _app_payload(self) -> JSON:
        owner = self.app_owner
        return {
            "id": str(self.application_id),
            "name": self.bot_user.global_name or self.bot_user.username,
            "icon": None,
            "description": "A fake application on a fake Discord.",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self.application_flags,
            "owner": owner.to_payload(),
            "team": None,
            "bot": self.bot_user.to_payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    # ---------------------------------------------------------------- messages

    def _store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        description: str | None = None,
        ephemeral: bool = False,
        size: tuple[int, int] | None = None,
    ) -> JSON:
        attachment_id = self._ids.next()
        content_type = content_type or mimetypes.guess_type(filename)[0] or _sniff(data)[1]
        prefix = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"/{prefix}/{channel_id}/{attachment_id}/{filename}"
        self._cdn[path] = (data, content_type)
        self._cdn["/media" + path] = (data, content_type)
        now = int(time.time())
        signature = f"?ex={now + 86400:x}&is={now:x}&hm={secrets.token_hex(32)}&"
        payload: JSON = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": self.base_url + path + signature,
            "proxy_url": self.base_url + "/media" + path + signature,
            "content_type": content_type,
        }
        if ephemeral:
            payload["ephemeral"] = True
        if description is not None:
            payload["description"] = description
        dimensions = size or _image_size(data)
        if dimensions:
            payload["width"], payload["height"] = dimensions
        return payload

    def _upload_limit(self, channel: FakeChannel) -> int:
        if channel.guild_id is None:
            return 10 * MIB
        return self.guilds[channel.guild_id].filesize_limit

    def _check_files(self, channel: FakeChannel, files: list[UploadedFile]) -> None:
        limit = self._upload_limit(channel)
        if any(len(f.data) > limit for f in files):
            raise _ApiError(413, 40005)

    def _attachments_for(
        self, channel: FakeChannel, body: JSON, files: list[UploadedFile], *, ephemeral: bool
    ) -> list[JSON]:
        """New attachments from the file parts, with filename/description from ``attachments[]``."""
        meta: dict[int, JSON] = {}
        for entry in body.get("attachments") or []:
            raw_id = str(entry.get("id", ""))
            if raw_id.isdigit() and int(raw_id) < 1 << 22:
                meta[int(raw_id)] = entry
        created = []
        for position, uploaded in enumerate(files):
            match = re.fullmatch(r"files\[(\d+)\]", uploaded.field)
            index = int(match.group(1)) if match else position
            info = meta.get(index, {})
            filename = info.get("filename") or uploaded.filename
            created.append(
                self._store_attachment(
                    channel.id,
                    filename,
                    uploaded.data,
                    description=info.get("description"),
                    ephemeral=ephemeral,
                )
            )
        return created

    def _embeds_for(self, embeds: list[JSON], attachments: list[JSON]) -> list[JSON]:
        """Discord's rewriting of ``attachment://name`` URLs and its default ``type: rich``."""
        by_name = {a["filename"]: a for a in attachments}
        result = []
        for embed in embeds:
            embed = copy.deepcopy(embed)
            embed.setdefault("type", "rich")
            for key in ("image", "thumbnail", "author", "footer"):
                part = embed.get(key)
                if not isinstance(part, dict):
                    continue
                url_key = "url" if key in ("image", "thumbnail") else "icon_url"
                url = part.get(url_key)
                if isinstance(url, str) and url.startswith("attachment://"):
                    attachment = by_name.get(url.removeprefix("attachment://"))
                    if attachment is not None:
                        part[url_key] = attachment["url"]
                        part["proxy_" + url_key] = attachment["proxy_url"]
            result.append(embed)
        return result

    def _mentions(
        self, channel: FakeChannel, content: str, allowed: JSON | None, author_id: int
    ) -> tuple[list[JSON], list[str], bool]:
        """Who a message really pings: ``allowed_mentions`` first, then Discord's permission rules
        (@everyone/@here and unmentionable roles need Mention Everyone)."""
        parse = set(allowed.get("parse", [])) if allowed is not None else {"users", "roles", "everyone"}
        explicit_users = {int(u) for u in (allowed or {}).get("users", [])}
        explicit_roles = {int(r) for r in (allowed or {}).get("roles", [])}
        guild = self.guilds.get(channel.guild_id or 0)
        may_ping_all = guild is None or bool(
            author_id in guild.members
            and self.permissions_for(guild.id, author_id, channel.id) & Permission.MENTION_EVERYONE
        )
        users: list[JSON] = []
        for raw in dict.fromkeys(_USER_MENTION.findall(content)):
            user_id = int(raw)
            if user_id in self.users and ("users" in parse or user_id in explicit_users):
                entry = self.users[user_id].to_payload()
                if guild is not None and user_id in guild.members:
                    entry["member"] = self._member_payload(guild.members[user_id], with_user=False)
                users.append(entry)
        roles = [
            raw
            for raw in dict.fromkeys(_ROLE_MENTION.findall(content))
            if ("roles" in parse or int(raw) in explicit_roles)
            and guild is not None
            and int(raw) in guild.roles
            and (guild.roles[int(raw)].mentionable or may_ping_all)
        ]
        everyone = "everyone" in parse and may_ping_all and ("@everyone" in content or "@here" in content)
        return users, roles, everyone

    def _validate_body(self, body: JSON, files: list[UploadedFile], *, editing: bool) -> None:
        """The checks Discord makes on every message body."""
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        limits = {"title": 256, "description": 4096}
        for index, embed in enumerate(embeds):
            for key, limit in limits.items():
                text = str(embed.get(key) or "")
                total += len(text)
                if len(text) > limit:
                    raise _form_error(
                        f"embeds.{index}.{key}",
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {limit} or fewer in length.",
                    )
            fields = embed.get("fields") or []
            if len(fields) > 25:
                raise _form_error(f"embeds.{index}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer.")
            for f_index, item in enumerate(fields):
                name, value = str(item.get("name") or ""), str(item.get("value") or "")
                total += len(name) + len(value)
                if not name or not value or len(name) > 256 or len(value) > 1024:
                    raise _form_error(
                        f"embeds.{index}.fields.{f_index}",
                        "BASE_TYPE_BAD_LENGTH",
                        "Field name 1-256, value 1-1024.",
                    )
            total += len(str((embed.get("footer") or {}).get("text") or ""))
            total += len(str((embed.get("author") or {}).get("name") or ""))
        if total > 6000:
            raise _form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        if len(body.get("components") or []) > 5 and not int(body.get("flags") or 0) & IS_COMPONENTS_V2:
            raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        if not editing and not (
            content
            or embeds
            or files
            or body.get("components")
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            raise _ApiError(400, 50006)

    def _create_message(
        self,
        channel: FakeChannel,
        body: JSON,
        files: list[UploadedFile],
        *,
        call: RecordedCall | None,
        author_id: int | None = None,
        interaction: FakeInteraction | None = None,
        flags: int | None = None,
        message_type: int = 0,
    ) -> FakeMessage:
        author = self.users[author_id or self.bot_id]
        if flags is None:
            allowed = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
            if interaction is not None:
                allowed |= EPHEMERAL
            flags = int(body.get("flags") or 0) & allowed
        attachments = self._attachments_for(channel, body, files, ephemeral=bool(flags & EPHEMERAL))
        content = str(body.get("content") or "")
        mentions, mention_roles, everyone = self._mentions(
            channel, content, body.get("allowed_mentions"), author.id
        )
        payload: JSON = {
            "id": str(self._ids.next()),
            "channel_id": str(channel.id),
            "type": message_type,
            "content": content,
            "author": author.to_payload(),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": everyone,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "attachments": attachments,
            "embeds": self._embeds_for(body.get("embeds") or [], attachments),
            "components": copy.deepcopy(body.get("components") or []),
            "pinned": False,
            "flags": flags,
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id"):
            target = self.messages.get(int(reference["message_id"]))
            if target is None or target.deleted or target.channel_id != channel.id:
                if reference.get("fail_if_not_exists", True):
                    raise _form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    )
            else:
                payload["type"] = 19
                payload["message_reference"] = {
                    "type": 0,
                    "message_id": str(target.id),
                    "channel_id": str(channel.id),
                    "guild_id": str(channel.guild_id) if channel.guild_id else None,
                }
                referenced = copy.deepcopy(target.payload)
                referenced.pop("referenced_message", None)
                payload["referenced_message"] = referenced
        if interaction is not None:
            user = self.users[interaction.user_id].to_payload()
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            metadata: JSON = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if interaction.type == APPLICATION_COMMAND:
                metadata["name"] = interaction.payload["data"]["name"]
            payload["interaction_metadata"] = metadata
        message = FakeMessage(payload, request=call, interaction_id=interaction.id if interaction else None)
        self.messages[message.id] = message
        if not flags & EPHEMERAL:
            channel.last_message_id = message.id
        self._notify()
        return message

    def _edit_message(
        self, message: FakeMessage, body: JSON, files: list[UploadedFile], call: RecordedCall
    ) -> FakeMessage:
        channel = self.channels[message.channel_id]
        payload = message.payload
        if "content" in body:
            payload["content"] = str(body["content"] or "")
        if "components" in body:
            payload["components"] = copy.deepcopy(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            keep = payload["flags"] & ~SUPPRESS_EMBEDS
            payload["flags"] = keep | (int(body["flags"]) & SUPPRESS_EMBEDS)
        if "attachments" in body:
            kept_ids = {str(a.get("id")) for a in body["attachments"] or []}
            kept = [a for a in payload["attachments"] if a["id"] in kept_ids]
            payload["attachments"] = kept + self._attachments_for(
                channel, body, files, ephemeral=message.ephemeral
            )
        elif files:
            payload["attachments"] += self._attachments_for(channel, body, files, ephemeral=message.ephemeral)
        if "embeds" in body:
            payload["embeds"] = self._embeds_for(body["embeds"] or [], payload["attachments"])
        if "allowed_mentions" in body or "content" in body:
            mentions, roles, everyone = self._mentions(
                channel, payload["content"], body.get("allowed_mentions"), message.author_id
            )
            payload.update(mentions=mentions, mention_roles=roles, mention_everyone=everyone)
        if message.loading:
            payload["flags"] &= ~LOADING
        else:
            payload["edited_timestamp"] = _now_iso()
        message.edits.append(call)
        self._notify()
        return message

    def _dm_channel(self, user_id: int) -> FakeChannel:
        channel_id = self._dm_by_user.get(user_id)
        if channel_id is None:
            channel = FakeChannel(self._ids.next(), "", None, type=1, recipient_id=user_id)
            self.channels[channel.id] = channel
            self._dm_by_user[user_id] = channel.id
            return channel
        return self.channels[channel_id]

    # ---------------------------------------------------------------- HTTP plumbing

    def _add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/gateway", self._handle_gateway)
        commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        webhook_message = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
        message = "/channels/{channel_id}/messages/{message_id}"
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/gateway", self._rest_gateway),
            ("GET", "/gateway/bot", self._rest_gateway_bot),
            ("GET", "/users/@me", self._rest_me),
            ("POST", "/users/@me/channels", self._rest_create_dm),
            ("GET", "/users/{user_id}", self._rest_get_user),
            ("GET", "/oauth2/applications/@me", self._rest_app_info),
            ("GET", "/applications/@me", self._rest_app_info),
            ("GET", commands, self._rest_list_commands),
            ("PUT", commands, self._rest_put_commands),
            ("POST", commands, self._rest_post_command),
            ("GET", commands + "/{command_id}", self._rest_get_command),
            ("PATCH", commands + "/{command_id}", self._rest_patch_command),
            ("DELETE", commands + "/{command_id}", self._rest_delete_command),
            ("GET", guild_commands + "/permissions", self._rest_command_permissions),
            ("GET", guild_commands, self._rest_list_commands),
            ("PUT", guild_commands, self._rest_put_commands),
            ("POST", guild_commands, self._rest_post_command),
            ("GET", guild_commands + "/{command_id}", self._rest_get_command),
            ("PATCH", guild_commands + "/{command_id}", self._rest_patch_command),
            ("DELETE", guild_commands + "/{command_id}", self._rest_delete_command),
            ("POST", "/interactions/{webhook_id}/{webhook_token}/callback", self._rest_callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._rest_webhook_execute),
            ("GET", webhook_message, self._rest_webhook_get),
            ("PATCH", webhook_message, self._rest_webhook_edit),
            ("DELETE", webhook_message, self._rest_webhook_delete),
            ("GET", "/channels/{channel_id}", self._rest_get_channel),
            ("GET", "/channels/{channel_id}/messages", self._rest_list_messages),
            ("POST", "/channels/{channel_id}/messages", self._rest_create_message),
            ("GET", message, self._rest_get_message),
            ("PATCH", message, self._rest_edit_message),
            ("DELETE", message, self._rest_delete_message),
            ("POST", "/channels/{channel_id}/typing", self._rest_typing),
            ("GET", "/guilds/{guild_id}", self._rest_get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._rest_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self._rest_guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._rest_get_member),
        ]
        for method, path, handler in routes:
            router.add_route(method, API_PREFIX + path, handler)
        for prefix in (
            "/attachments",
            "/ephemeral-attachments",
            "/media/attachments",
            "/media/ephemeral-attachments",
        ):
            router.add_get(prefix + "/{tail:.+}", self._cdn_get)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path == "/gateway":
            gateway_response: web.StreamResponse = await handler(request)
            return gateway_response
        call = await self._record(request)
        request[_CALL] = call
        response = await self._respond(request, handler, call)
        call.status = response.status
        if not call.route.startswith("CDN") and response.status != 429:
            for key, value in self._ratelimit_headers(call.route).items():
                response.headers.setdefault(key, value)
        self.calls.append(call)
        self._notify()
        return response

    async def _respond(
        self, request: web.Request, handler: Callable[[web.Request], Any], call: RecordedCall
    ) -> web.Response:
        fault = None if call.route.startswith("CDN") else self._take_fault(call)
        if fault is not None:
            call.injected = True
            return self._fault_response(fault, call)
        if not self._authorized(call):
            return self._error_response(call, _ApiError(401, 0))
        try:
            response: web.Response = await handler(request)
        except _ApiError as error:
            return self._error_response(call, error)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            call.unhandled = True
            return self._error_response(call, _ApiError(exc.status, 0))
        except Exception as exc:
            # A bug in the fake: answer like Discord's 500 and keep it for the test to see.
            self.internal_errors.append(exc)
            return self._error_response(call, _ApiError(500, 0, f"fake discord crashed: {exc!r}"))
        return response

    async def _record(self, request: web.Request) -> RecordedCall:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        path = request.path
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
            route = f"{request.method} {canonical.removeprefix(API_PREFIX)}"
        else:
            route = f"CDN {request.method} {canonical}"
        if resource is None:
            route = f"{request.method} {path}"
        body: Any = None
        form: dict[str, str] = {}
        files: list[UploadedFile] = []
        if request.body_exists:
            if request.content_type == "multipart/form-data":
                posted = await request.post()
                for key, value in posted.items():
                    if isinstance(value, web.FileField):
                        files.append(UploadedFile(key, value.filename, value.content_type, value.file.read()))
                    else:
                        form[key] = str(value)
                if "payload_json" in form:
                    body = json.loads(form["payload_json"])
            else:
                raw = await request.read()
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw.decode("utf-8", "replace")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        return RecordedCall(
            method=request.method,
            path=path,
            route=route,
            params=dict(request.match_info),
            query=dict(request.query),
            headers=headers,
            authorized=self._token_accepted(request.headers.get("Authorization")),
            json=body,
            form=form,
            files=files,
            at=time.monotonic(),
        )

    def _token_accepted(self, header: str | None) -> bool:
        """Like Discord: a bot route needs ``Bot <token>``, and the right token when one was given."""
        if header is None:
            return False
        return self.token is None or secrets.compare_digest(header, f"Bot {self.token}")

    def _authorized(self, call: RecordedCall) -> bool:
        """Bot routes need ``Authorization: Bot <token>``; webhook and callback routes do not."""
        if call.route.startswith("CDN") or call.unhandled:
            return True
        path = call.route.partition(" ")[2]
        if path.startswith(("/interactions/", "/webhooks/")):
            return True
        return call.authorized

    def _bucket(self, route: str) -> str:
        return hashlib.sha256(route.encode()).hexdigest()[:16]

    def _ratelimit_headers(self, route: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": self._bucket(route),
        }

    def _json(
        self, call: RecordedCall, data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        # Exactly "application/json": discord.py's json_or_text compares the header verbatim.
        call.response = data
        return web.Response(
            body=_dumps(data).encode(),
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def _no_content(self, call: RecordedCall) -> web.Response:
        call.response = None
        return web.Response(status=204)

    def _error_response(self, call: RecordedCall, error: _ApiError) -> web.Response:
        body: JSON = {"message": error.message, "code": error.code}
        if error.errors:
            body["errors"] = error.errors
        return self._json(call, body, error.status)

    @staticmethod
    def _call(request: web.Request) -> RecordedCall:
        return request[_CALL]

    def _body(self, request: web.Request) -> JSON:
        body = self._call(request).json
        return body if isinstance(body, dict) else {}

    def _channel_from(self, request: web.Request) -> FakeChannel:
        channel = self.channels.get(self._int(request, "channel_id", 10003))
        if channel is None or channel.deleted:
            raise _ApiError(404, 10003)
        if channel.guild_id is not None and self.enforce_permissions:
            perms = self.permissions_for(channel.guild_id, self.bot_id, channel.id)
            if not perms & Permission.VIEW_CHANNEL:
                raise _ApiError(403, 50001)
        return channel

    @staticmethod
    def _int(request: web.Request, key: str, code: int) -> int:
        try:
            return int(request.match_info[key])
        except ValueError:
            raise _ApiError(404, code) from None

    def _check_application(self, request: web.Request) -> None:
        if self._int(request, "application_id", 0) != self.application_id:
            raise _ApiError(403, 50001)

    # ---------------------------------------------------------------- REST handlers

    async def _cdn_get(self, request: web.Request) -> web.Response:
        entry = self._cdn.get(request.path)
        if entry is None:
            return web.Response(status=404, text="Not Found")
        data, content_type = entry
        self._call(request).response = data
        return web.Response(body=data, headers={"Content-Type": content_type})

    async def _rest_gateway(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), {"url": self.gateway_url})

    async def _rest_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return self._json(
            self._call(request),
            {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit},
        )

    async def _rest_me(self, request: web.Request) -> web.Response:
        me = {
            **self.bot_user.to_payload(),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "locale": "en-US",
        }
        return self._json(self._call(request), me)

    async def _rest_get_user(self, request: web.Request) -> web.Response:
        user = self.users.get(self._int(request, "user_id", 10013))
        if user is None:
            raise _ApiError(404, 10013)
        return self._json(self._call(request), user.to_payload())

    async def _rest_app_info(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), self._app_payload())

    async def _rest_create_dm(self, request: web.Request) -> web.Response:
        recipient = self._body(request).get("recipient_id")
        if recipient is None or not str(recipient).isdigit() or int(recipient) not in self.users:
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        return self._json(self._call(request), self._channel_payload(self._dm_channel(int(recipient))))

    # commands

    def _scope(self, request: web.Request) -> int | None:
        self._check_application(request)
        if "guild_id" not in request.match_info:
            return None
        guild_id = self._int(request, "guild_id", 10004)
        if guild_id not in self.guilds:
            raise _ApiError(403, 50001)
        return guild_id

    def _validate_command(self, body: JSON, prefix: str) -> None:
        ctype = int(body.get("type") or 1)
        name = body.get("name")
        if not isinstance(name, str) or not (1 <= len(name) <= 32):
            raise _form_error(f"{prefix}name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if ctype == 1:
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise _form_error(
                    f"{prefix}name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            description = body.get("description")
            if not isinstance(description, str) or not (1 <= len(description) <= 100):
                raise _form_error(
                    f"{prefix}description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            self._validate_options(body.get("options") or [], f"{prefix}options.", depth=0)
        elif body.get("description"):
            raise _form_error(
                f"{prefix}description", "APPLICATION_COMMAND_INVALID_DESCRIPTION", "Must be empty."
            )

    def _validate_options(self, options: list[JSON], prefix: str, *, depth: int) -> None:
        if len(options) > 25:
            raise _form_error(prefix.rstrip("."), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen: set[str] = set()
        optional_seen = False
        for index, option in enumerate(options):
            here = f"{prefix}{index}."
            name = option.get("name")
            if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
                raise _form_error(
                    f"{here}name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if name in seen:
                raise _form_error(
                    f"{here}name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate name"
                )
            seen.add(name)
            description = option.get("description")
            if not isinstance(description, str) or not (1 <= len(description) <= 100):
                raise _form_error(
                    f"{here}description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            kind = option.get("type")
            if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
                if depth >= (1 if kind == SUB_COMMAND_GROUP else 2):
                    raise _form_error(f"{here}type", "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Too deep.")
                self._validate_options(option.get("options") or [], f"{here}options.", depth=depth + 1)
                continue
            if option.get("required"):
                if optional_seen:
                    raise _form_error(
                        f"{here}required",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                optional_seen = True
            if len(option.get("choices") or []) > 25:
                raise _form_error(f"{here}choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")

    def _stored_command(self, body: JSON, guild_id: int | None, command_id: int | None) -> JSON:
        payload: JSON = {
            "id": str(command_id or self._ids.next()),
            "application_id": str(self.application_id),
            "version": str(self._ids.next()),
            "default_member_permissions": body.get("default_member_permissions"),
            "type": int(body.get("type") or 1),
            "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description") or "",
            "description_localizations": body.get("description_localizations"),
            "dm_permission": body.get("dm_permission", True),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
            "nsfw": bool(body.get("nsfw", False)),
        }
        if body.get("options"):
            payload["options"] = copy.deepcopy(body["options"])
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
        return payload

    def _existing_id(self, scope: int | None, body: JSON) -> int | None:
        for command in self._commands.get(scope, {}).values():
            if command["name"] == body.get("name") and command["type"] == int(body.get("type") or 1):
                return int(command["id"])
        return None

    async def _rest_list_commands(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), self.synced_commands(self._scope(request)))

    async def _rest_command_permissions(self, request: web.Request) -> web.Response:
        self._scope(request)
        return self._json(self._call(request), [])

    async def _rest_put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = self._call(request).json
        if not isinstance(body, list):
            raise _ApiError(400, 50035, "Invalid Form Body")
        if len(body) > 100:
            raise _ApiError(400, 30032)
        seen: set[tuple[str, int]] = set()
        for index, command in enumerate(body):
            self._validate_command(command, f"{index}.")
            key = (command["name"], int(command.get("type") or 1))
            if key in seen:
                raise _form_error(f"{index}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate name")
            seen.add(key)
        stored = [self._stored_command(c, scope, self._existing_id(scope, c)) for c in body]
        self._commands[scope] = {int(c["id"]): c for c in stored}
        return self._json(self._call(request), copy.deepcopy(stored))

    async def _rest_post_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = self._body(request)
        self._validate_command(body, "")
        existing = self._existing_id(scope, body)
        stored = self._stored_command(body, scope, existing)
        self._commands.setdefault(scope, {})[int(stored["id"])] = stored
        return self._json(self._call(request), copy.deepcopy(stored), 200 if existing else 201)

    def _command_from(self, request: web.Request) -> tuple[int | None, JSON]:
        scope = self._scope(request)
        command = self._commands.get(scope, {}).get(self._int(request, "command_id", 10063))
        if command is None:
            raise _ApiError(404, 10063)
        return scope, command

    async def _rest_get_command(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), copy.deepcopy(self._command_from(request)[1]))

    async def _rest_patch_command(self, request: web.Request) -> web.Response:
        scope, command = self._command_from(request)
        merged = {**command, **self._body(request)}
        self._validate_command(merged, "")
        stored = self._stored_command(merged, scope, int(command["id"]))
        self._commands[scope][int(command["id"])] = stored
        return self._json(self._call(request), copy.deepcopy(stored))

    async def _rest_delete_command(self, request: web.Request) -> web.Response:
        scope, command = self._command_from(request)
        del self._commands[scope][int(command["id"])]
        return self._no_content(self._call(request))

    # interactions and their webhooks

    async def _rest_callback(self, request: web.Request) -> web.Response:
        call = self._call(request)
        interaction = self.interactions.get(self._int(request, "webhook_id", 10062))
        if interaction is None:
            raise _ApiError(404, 10062)
        if not secrets.compare_digest(interaction.token, request.match_info["webhook_token"]):
            raise _ApiError(401, 50027)
        if interaction.callback is not None:
            interaction.refused_callbacks += 1
            raise _ApiError(400, 40060)
        if self.ack_deadline is not None and call.at - interaction.dispatched_at > self.ack_deadline:
            raise _ApiError(404, 10062)
        body = self._body(request)
        rtype = body.get("type")
        data: JSON = body.get("data") or {}
        allowed = ALLOWED_CALLBACKS.get(interaction.type, frozenset())
        if rtype not in allowed:
            raise _form_error("type", "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}.")
        channel = self.channels[interaction.channel_id]
        message: FakeMessage | None = None
        command_type = 20 if interaction.type == APPLICATION_COMMAND else 0
        if rtype == 4:
            self._validate_body(data, call.files, editing=False)
            self._check_files(channel, call.files)
            message = self._create_message(
                channel, data, call.files, call=call, interaction=interaction, message_type=command_type
            )
            interaction.original_message_id = message.id
        elif rtype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._create_message(
                channel, {}, [], call=call, interaction=interaction, flags=flags, message_type=command_type
            )
            interaction.original_message_id = message.id
        elif rtype == 7:
            self._validate_body(data, call.files, editing=True)
            target = self.messages.get(interaction.original_message_id or 0)
            if target is None:
                raise _ApiError(404, 10008)
            message = self._edit_message(target, data, call.files, call)
        elif rtype == 8:
            if len(data.get("choices") or []) > 25:
                raise _form_error("data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        elif rtype == 9:
            for key in ("custom_id", "title", "components"):
                if not data.get(key):
                    raise _form_error(f"data.{key}", "BASE_TYPE_REQUIRED", "This field is required")
        interaction.callback = CallbackRecord(rtype, data, call, call.at - interaction.dispatched_at, message)
        interaction.changed()
        self._notify()
        if not _truthy(request.query.get("with_response")):
            return self._no_content(call)
        response: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(message is not None and message.ephemeral),
            }
        }
        if message is not None:
            response["interaction"]["response_message_id"] = str(message.id)
        if rtype in (4, 5, 7):
            response["resource"] = {"type": rtype}
            if rtype != 5 and message is not None:
                response["resource"]["message"] = copy.deepcopy(message.payload)
        return self._json(call, response)

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        if self._int(request, "webhook_id", 10015) != self.application_id:
            raise _ApiError(404, 10015)
        token = request.match_info["webhook_token"]
        interaction = self._interactions_by_token.get(token)
        if interaction is None or interaction.callback is None:
            raise _ApiError(404, 10015)  # Discord: no followups before the acknowledgement
        return interaction

    def _webhook_message(self, request: web.Request, interaction: FakeInteraction) -> FakeMessage:
        raw = request.match_info["message_id"]
        if raw == "@original":
            message_id = interaction.original_message_id
        else:
            message_id = int(raw) if raw.isdigit() else None
            ours = {interaction.original_message_id, *(m.id for m in interaction.followups)}
            if message_id not in ours:
                message_id = None
        message = self.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise _ApiError(404, 10008)
        return message

    async def _rest_webhook_execute(self, request: web.Request) -> web.Response:
        call = self._call(request)
        interaction = self._webhook_interaction(request)
        body = self._body(request)
        channel = self.channels[interaction.channel_id]
        self._validate_body(body, call.files, editing=False)
        self._check_files(channel, call.files)
        original = interaction.original
        if original is not None and original.loading and not original.deleted:
            # The first followup after a deferral fills in the "thinking" message.
            message = self._edit_message(original, body, call.files, call)
        else:
            message = self._create_message(channel, body, call.files, call=call, interaction=interaction)
        interaction.followups.append(message)
        interaction.changed()
        self._notify()
        if not _truthy(request.query.get("wait")):
            return self._no_content(call)
        return self._json(call, copy.deepcopy(message.payload))

    async def _rest_webhook_get(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        return self._json(
            self._call(request), copy.deepcopy(self._webhook_message(request, interaction).payload)
        )

    async def _rest_webhook_edit(self, request: web.Request) -> web.Response:
        call = self._call(request)
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        body = self._body(request)
        self._validate_body(body, call.files, editing=True)
        self._check_files(self.channels[message.channel_id], call.files)
        self._edit_message(message, body, call.files, call)
        return self._json(call, copy.deepcopy(message.payload))

    async def _rest_webhook_delete(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        message.deleted = True
        self._notify()
        return self._no_content(self._call(request))

    # channels and messages

    async def _rest_get_channel(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), self._channel_payload(self._channel_from(request)))

    async def _rest_list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel_from(request)
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        messages = [m for m in self.messages_in(channel.id, include_ephemeral=False)]
        if "before" in request.query:
            messages = [m for m in messages if m.id < int(request.query["before"])]
        if "after" in request.query:
            messages = [m for m in messages if m.id > int(request.query["after"])]
            messages = messages[:limit]
        newest_first = sorted(messages, key=lambda m: m.id, reverse=True)[:limit]
        return self._json(self._call(request), [self._as_fetched(m) for m in newest_first])

    async def _rest_create_message(self, request: web.Request) -> web.Response:
        call = self._call(request)
        channel = self._channel_from(request)
        body = self._body(request)
        if channel.type not in TEXTLIKE_CHANNEL_TYPES:
            raise _ApiError(400, 50008)
        if channel.guild_id is not None and self.enforce_permissions:
            perms = self.permissions_for(channel.guild_id, self.bot_id, channel.id)
            if not perms & Permission.SEND_MESSAGES:
                raise _ApiError(403, 50013)
            if call.files and not perms & Permission.ATTACH_FILES:
                raise _ApiError(403, 50013)
        if channel.guild_id is None and not self.users[channel.recipient_id or 0].accepts_dms:
            raise _ApiError(403, 50007)
        nonce = body.get("nonce")
        key = (channel.id, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] <= self.nonce_window:
                existing = self.messages[seen[0]]
                return self._json(call, copy.deepcopy(existing.payload))
        self._validate_body(body, call.files, editing=False)
        self._check_files(channel, call.files)
        message = self._create_message(channel, body, call.files, call=call)
        if nonce is not None:
            self._nonces[key] = (message.id, time.monotonic())
        return self._json(call, copy.deepcopy(message.payload))

    def _message_from(self, request: web.Request, channel: FakeChannel) -> FakeMessage:
        message = self.messages.get(self._int(request, "message_id", 10008))
        if message is None or message.deleted or message.ephemeral or message.channel_id != channel.id:
            raise _ApiError(404, 10008)
        return message

    async def _rest_get_message(self, request: web.Request) -> web.Response:
        channel = self._channel_from(request)
        message = self._message_from(request, channel)
        return self._json(self._call(request), self._as_fetched(message))

    def _as_fetched(self, message: FakeMessage) -> JSON:
        """A message as the bot fetches it: without the Message Content intent (``message_content_intent
        = False``) Discord empties content, embeds, attachments and components of messages by others in
        a server, unless they mention the bot."""
        payload = copy.deepcopy(message.payload)
        exempt = (
            self.message_content_intent
            or message.author_id == self.bot_id
            or self.channels[message.channel_id].guild_id is None
            or any(int(user["id"]) == self.bot_id for user in payload.get("mentions") or [])
        )
        if not exempt:
            payload.update(content="", embeds=[], attachments=[], components=[])
        return payload

    async def _rest_edit_message(self, request: web.Request) -> web.Response:
        call = self._call(request)
        channel = self._channel_from(request)
        message = self._message_from(request, channel)
        if message.author_id != self.bot_id:
            raise _ApiError(403, 50005)
        body = self._body(request)
        self._validate_body(body, call.files, editing=True)
        self._check_files(channel, call.files)
        self._edit_message(message, body, call.files, call)
        return self._json(call, copy.deepcopy(message.payload))

    async def _rest_delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel_from(request)
        message = self._message_from(request, channel)
        if (
            message.author_id != self.bot_id
            and channel.guild_id is not None
            and not self.permissions_for(channel.guild_id, self.bot_id, channel.id)
            & Permission.MANAGE_MESSAGES
        ):
            raise _ApiError(403, 50013)
        message.deleted = True
        self._notify()
        return self._no_content(self._call(request))

    async def _rest_typing(self, request: web.Request) -> web.Response:
        self._channel_from(request)
        return self._no_content(self._call(request))

    # guilds

    def _guild_from(self, request: web.Request) -> FakeGuild:
        guild = self.guilds.get(self._int(request, "guild_id", 10004))
        if guild is None:
            raise _ApiError(404, 10004)
        return guild

    async def _rest_get_guild(self, request: web.Request) -> web.Response:
        return self._json(self._call(request), self._guild_payload(self._guild_from(request), full=False))

    async def _rest_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild_from(request)
        return self._json(self._call(request), [self._channel_payload(c) for c in guild.channels.values()])

    async def _rest_guild_roles(self, request: web.Request) -> web.Response:
        guild = self._guild_from(request)
        return self._json(self._call(request), [r.to_payload() for r in guild.roles.values()])

    async def _rest_get_member(self, request: web.Request) -> web.Response:
        guild = self._guild_from(request)
        member = guild.members.get(self._int(request, "user_id", 10007))
        if member is None:
            raise _ApiError(404, 10007)
        return self._json(self._call(request), self._member_payload(member))
