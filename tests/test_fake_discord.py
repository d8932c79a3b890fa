"""The fake Discord holds up against the real discord.py client, in-process and in a subprocess.

These tests are the fake's contract: if discord.py changes how it talks to Discord, they fail here
first, instead of every end-to-end test of the bot failing in a confusing way.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import logging
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes import fixtures as fake_fixtures
from tests.fakes.discord_api import (
    AttachmentSpec,
    FakeDiscord,
    Overwrite,
    Permission,
    UploadedFile,
)

fake_discord = fake_fixtures.fake_discord

ROOT = Path(__file__).resolve().parents[1]
# A 1x1 PNG and the first bytes of an MP4: real magic numbers, so content types are sniffed honestly.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(64))


class RegenButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"demo:regen:(?P<job_id>\d+)"):
    """A button that survives restarts: its state lives in the custom_id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(label="Regenerate", custom_id=f"demo:regen:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"regenerating job {self.job_id}", ephemeral=True)


class PressView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Press", custom_id="demo:press")
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="pressed", view=self)


class NameModal(discord.ui.Modal, title="Who are you?"):
    name: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Name", custom_id="demo:name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"hello {self.name.value}", ephemeral=True)


def build_demo_group() -> app_commands.Group:
    """A fresh /demo group per bot, so no command object is shared between tests."""
    demo = app_commands.Group(name="demo", description="Exercise the fake Discord")

    @demo.command(description="Defer, read the attachment, follow up")
    async def upload(
        interaction: discord.Interaction, text: str, count: int, flag: bool, file: discord.Attachment
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        data = await file.read()
        digest = hashlib.sha256(data).hexdigest()
        await interaction.followup.send(
            f"{text}|{count}|{flag}|{file.filename}|{len(data)}|{digest}", ephemeral=True
        )

    @demo.command(description="Answer at once, privately")
    async def hello(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hello there", ephemeral=True)

    @demo.command(description="Post a result to the channel")
    async def post(interaction: discord.Interaction, nonce: int) -> None:
        await interaction.response.defer(ephemeral=True)
        assert isinstance(interaction.channel, discord.TextChannel)
        embed = discord.Embed(title="Your video", description="Rendered in 42 s")
        message = await interaction.channel.send(
            f"<@{interaction.user.id}> your video is ready",
            embed=embed,
            file=discord.File(io.BytesIO(VIDEO), filename="clip.mp4"),
            allowed_mentions=discord.AllowedMentions.none(),
            nonce=nonce,
        )
        await interaction.followup.send(f"posted {message.id}", ephemeral=True)

    @demo.command(description="Show buttons")
    async def buttons(interaction: discord.Interaction) -> None:
        view = PressView()
        view.add_item(RegenButton(42))
        await interaction.response.send_message("choose", view=view)

    @demo.command(description="Edit the original response, then follow up")
    async def progress(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="working: 50%")
        original = await interaction.original_response()
        await interaction.followup.send(f"original is {original.id}", ephemeral=True)

    @demo.command(description="Pick a colour")
    async def pick(interaction: discord.Interaction, colour: str) -> None:
        await interaction.response.send_message(colour, ephemeral=True)

    @pick.autocomplete("colour")
    async def pick_colour(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = ["red", "green", "blue", "rose"]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    @demo.command(description="Ask for a name")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(NameModal(custom_id="demo:modal"))

    return demo


async def describe(interaction: discord.Interaction, message: discord.Message) -> None:
    """A message command: what the menu's message carried, and what fetching it again gives."""
    assert isinstance(interaction.channel, discord.abc.Messageable)
    fetched = await interaction.channel.fetch_message(message.id)
    names = ",".join(a.filename for a in message.attachments)
    await interaction.response.send_message(
        f"{message.content}|{names}|{len(fetched.attachments)}|{fetched.content}", ephemeral=True
    )


class RecordingTree(app_commands.CommandTree["DemoBot"]):
    """Keeps command errors where the test can see them (they would only be logged otherwise)."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        self.client.command_errors.append(error)
        self.client.command_failed.set()


class DemoBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=RecordingTree,
            guild_ready_timeout=0.05,
        )
        self.command_errors: list[app_commands.AppCommandError] = []
        self.command_failed = asyncio.Event()
        self.dev_guild = discord.Object(guild_id)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RegenButton)
        self.tree.add_command(build_demo_group(), guild=self.dev_guild)
        menu = app_commands.ContextMenu(name="Describe this", callback=describe)
        self.tree.add_command(app_commands.guild_only(menu), guild=self.dev_guild)
        await self.tree.sync(guild=self.dev_guild)


async def start_bot(fake: FakeDiscord) -> tuple[DemoBot, asyncio.Task[None]]:
    bot = DemoBot(fake.guild_id)
    try:
        await bot.login("fake-token")
        task = asyncio.create_task(bot.connect())
        await fake.wait_until_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 5)
    except BaseException:
        await bot.close()
        raise
    return bot, task


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[DemoBot]:
    bot, task = await start_bot(fake_discord)
    try:
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)
    assert bot.command_errors == []


async def test_login_sync_and_gateway_handshake(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    assert bot.user is not None
    assert bot.user.id == fake.bot_id
    assert bot.application_id == fake.application_id

    connection = fake.gateway_connections[0]
    assert connection["v"] == "10"
    assert connection["encoding"] == "json"
    assert connection["compress"] in {"zlib-stream", "zstd-stream"}  # asked for, ignored: text frames
    assert fake.identify_payloads[0]["token"] == "fake-token"
    assert fake.identify_payloads[0]["intents"] == discord.Intents.default().value

    guild = bot.get_guild(fake.guild_id)
    assert guild is not None
    assert guild.name == "Test Guild"
    assert [c.name for c in guild.text_channels] == ["videos", "general"]
    assert guild.filesize_limit == 10 * 1024 * 1024
    assert guild.me.guild_permissions.attach_files
    assert "Test Bot" in [r.name for r in guild.me.roles]

    routes = [c.route for c in fake.calls]
    assert routes[:3] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{application_id}/guilds/{guild_id}/commands",
    ]
    assert all(c.authorized and "Authorization" not in c.headers for c in fake.calls)
    gateway = await bot.http.get_bot_gateway()
    assert gateway[1] == fake.gateway_url
    (demo,) = [c for c in fake.synced_commands(fake.guild_id) if c["type"] == 1]
    upload = next(o for o in demo["options"] if o["name"] == "upload")
    assert [o["type"] for o in upload["options"]] == [3, 4, 5, 11]


async def test_deferred_command_reads_attachment_and_follows_up(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    fake = fake_discord
    interaction = await fake.send_command(
        "demo",
        subcommand="upload",
        options={"text": "a cat", "count": 3, "flag": True},
        attachments={"file": AttachmentSpec(PNG, "cat.png")},
        user_id=fake.member_id,
        channel_id=fake.channel_ids["videos"],
    )

    data = interaction.payload["data"]
    assert data["guild_id"] == str(fake.guild_id)
    (sub,) = data["options"]
    assert (sub["type"], sub["name"]) == (1, "upload")
    assert [(o["name"], o["type"]) for o in sub["options"]] == [
        ("text", 3),
        ("count", 4),
        ("flag", 5),
        ("file", 11),
    ]
    (attachment,) = data["resolved"]["attachments"].values()
    assert (attachment["content_type"], attachment["width"], attachment["size"]) == ("image/png", 1, len(PNG))

    callback = await interaction.wait_callback()
    assert callback.type == 5
    assert callback.flags == 64
    assert callback.call.query["with_response"] == "1"
    assert callback.elapsed < 3

    followup = await interaction.wait_followup()
    digest = hashlib.sha256(PNG).hexdigest()
    assert followup.content == f"a cat|3|True|cat.png|{len(PNG)}|{digest}"
    assert followup is callback.message  # the first followup fills in the "thinking" message
    assert followup.ephemeral
    assert not followup.loading
    assert followup.body["flags"] == 64
    (download,) = fake.calls_to("GET", r"/ephemeral-attachments/.*")
    assert download.status == 200
    assert download.response == PNG


async def test_ephemeral_reply(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    interaction = await fake.send_command("demo", subcommand="hello", user_id=fake.member_id)

    callback = await interaction.wait_callback()

    assert callback.type == 4
    assert callback.flags == 64
    assert callback.content == "hello there"
    assert callback.message is not None
    assert callback.message.ephemeral
    assert fake.messages_in(fake.channel_ids["videos"], include_ephemeral=False) == []


async def test_channel_post_with_embed_file_nonce_and_no_pings(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    fake = fake_discord
    videos = fake.channel_ids["videos"]
    interaction = await fake.send_command(
        "demo", subcommand="post", options={"nonce": 777}, user_id=fake.member_id, channel_id=videos
    )

    followup = await interaction.wait_followup()
    posted = await fake.wait_for_message(videos, lambda m: not m.ephemeral)

    assert followup.content == f"posted {posted.id}"
    assert posted.content == f"<@{fake.member_id}> your video is ready"
    assert posted.allowed_mentions == {"parse": []}
    assert posted.payload["mentions"] == []  # the mention is shown but pings nobody
    assert posted.body["nonce"] == "777"
    assert posted.body["enforce_nonce"] is True
    assert posted.embeds[0]["title"] == "Your video"
    assert posted.files == [UploadedFile("files[0]", "clip.mp4", "application/octet-stream", VIDEO)]
    (attachment,) = posted.attachments
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "clip.mp4",
        "video/mp4",
        len(VIDEO),
    )
    assert fake.attachment_bytes(attachment) == VIDEO

    channel = bot.get_channel(videos)
    assert isinstance(channel, discord.TextChannel)
    again = await channel.send("a retried post", nonce=777)
    assert again.id == posted.id  # enforce_nonce: the retry returns the first message
    assert fake.messages_in(videos, include_ephemeral=False) == [posted]

    fetched = await channel.fetch_message(posted.id)
    assert fetched.attachments[0].filename == "clip.mp4"
    await fetched.edit(content="edited", attachments=[])
    assert (posted.content, posted.attachments) == ("edited", [])
    assert posted.payload["edited_timestamp"] is not None
    await fetched.delete()
    assert posted.deleted
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(posted.id)


async def test_a_waiter_woken_by_another_change_still_wakes_for_its_own(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    """A wait re-armed after an unrelated change must be woken by the next one, not by its timeout."""
    fake = fake_discord
    videos = fake.channel_ids["videos"]
    channel = bot.get_channel(videos)
    assert isinstance(channel, discord.TextChannel)
    started = asyncio.get_running_loop().time()
    waiting = asyncio.ensure_future(
        fake.wait_for_message(videos, lambda m: m.content == "second", timeout=10)
    )
    await channel.send("first")  # wakes the wait, which finds nothing and waits again
    await channel.send("second")
    posted = await waiting
    assert posted.content == "second"
    assert asyncio.get_running_loop().time() - started < 2  # woken by the post, not at the timeout


async def test_edit_original_then_follow_up(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    interaction = await fake.send_command("demo", subcommand="progress", user_id=fake.member_id)

    followup = await interaction.wait_followup()

    original = interaction.original
    assert original is not None
    assert (original.content, original.loading, original.ephemeral) == ("working: 50%", False, False)
    assert [c.route for c in original.edits] == [
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
    ]
    assert followup.content == f"original is {original.id}"
    assert followup is not original  # the thinking message was already filled in by the edit
    assert followup.ephemeral
    get_original = fake.calls_to("GET", r"/webhooks/\d+/[^/]+/messages/@original")
    assert [c.status for c in get_original] == [200]


async def test_autocomplete(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    interaction = await fake.send_autocomplete(
        "demo", subcommand="pick", focused="colour", options={"colour": "r"}, user_id=fake.member_id
    )

    callback = await interaction.wait_callback()

    assert callback.type == 8
    assert callback.choices == [{"name": "red", "value": "red"}, {"name": "rose", "value": "rose"}]


async def test_direct_messages(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    user = await bot.fetch_user(fake.member_id)

    sent = await user.send("psst")

    (dm,) = [c for c in fake.channels.values() if c.recipient_id == fake.member_id]
    assert [m.content for m in fake.messages_in(dm.id)] == ["psst"]
    assert sent.channel.id == dm.id
    fake.block_dms(fake.member_id)
    with pytest.raises(discord.Forbidden) as refused:
        await user.send("still there?")
    assert refused.value.code == 50007


async def test_boost_tier_and_upload_limit(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    updated = bot.wait_for("guild_update", timeout=5)
    fake.set_premium_tier(fake.guild_id, 2)
    _, guild = await updated
    assert guild.filesize_limit == 50 * 1024 * 1024

    fake.set_upload_limit(fake.guild_id, 1024)
    interaction = await fake.send_command("demo", subcommand="hello", user_id=fake.member_id)
    assert interaction.payload["attachment_size_limit"] == 1024
    channel = bot.get_channel(fake.channel_ids["videos"])
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(file=discord.File(io.BytesIO(bytes(2048)), filename="big.bin"))
    assert (refused.value.status, refused.value.code) == (413, 40005)
    await interaction.wait_callback()


async def test_buttons_reach_the_view_and_the_dynamic_item(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    shown = await fake.send_command("demo", subcommand="buttons", user_id=fake.member_id)
    message = (await shown.wait_callback()).message
    assert message is not None
    assert sorted(message.custom_ids()) == ["demo:press", "demo:regen:42"]

    press = await fake.send_component("demo:press", message_id=message.id, user_id=fake.member_id)
    pressed = await press.wait_callback()
    assert pressed.type == 7
    assert message.content == "pressed"
    with pytest.raises(ValueError, match="disabled"):
        await fake.send_component("demo:press", message_id=message.id, user_id=fake.member_id)

    regen = await fake.send_component("demo:regen:42", message_id=message.id, user_id=fake.member_id)
    answer = await regen.wait_callback()
    assert (answer.type, answer.flags, answer.content) == (4, 64, "regenerating job 42")

    # A message from before a restart: the fake never saw it, the DynamicItem still answers.
    stale = await fake.send_component(
        "demo:regen:7", message_id=1, channel_id=fake.channel_ids["general"], user_id=fake.admin_id
    )
    assert (await stale.wait_callback()).content == "regenerating job 7"


async def test_modal_round_trip(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    ask = await fake.send_command("demo", subcommand="ask", user_id=fake.member_id)
    opened = await ask.wait_callback()
    assert opened.type == 9
    assert opened.data["custom_id"] == "demo:modal"

    with pytest.raises(ValueError, match="no inputs"):
        await fake.send_modal_submit("demo:modal", {"nope": "x"}, user_id=fake.member_id)
    submit = await fake.send_modal_submit("demo:modal", {"demo:name": "Ada"}, user_id=fake.member_id)

    answer = await submit.wait_callback()
    assert (answer.type, answer.content, answer.ephemeral) == (4, "hello Ada", True)


async def test_message_command_on_a_members_message_with_and_without_the_message_content_intent(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    fake = fake_discord
    (menu,) = [c for c in fake.synced_commands(fake.guild_id) if c["type"] == 3]
    assert (menu["name"], menu["description"], menu["contexts"]) == ("Describe this", "", [0])
    channel = fake.channel_ids["videos"]
    message = fake.add_message(channel, fake.admin_id, "look", attachments=[AttachmentSpec(PNG, "cat.png")])
    (attachment,) = message.attachments
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "cat.png",
        "image/png",
        len(PNG),
    )
    assert fake.attachment_bytes(attachment) == PNG

    used = await fake.send_message_command("Describe this", message_id=message.id, user_id=fake.member_id)
    assert used.payload["data"]["target_id"] == str(message.id)
    assert (await used.wait_callback()).content == "look|cat.png|1|look"

    fake.message_content_intent = False  # the menu's message is whole; a fetched one is emptied
    used = await fake.send_message_command("Describe this", message_id=message.id, user_id=fake.member_id)
    assert (await used.wait_callback()).content == "look|cat.png|0|"
    with pytest.raises(ValueError, match="no message command"):
        await fake.send_message_command("Nope", message_id=message.id, user_id=fake.member_id)


async def test_injected_404_and_deleted_channel_surface_as_not_found(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    channel = bot.get_channel(general)
    assert isinstance(channel, discord.TextChannel)

    fake.fail_next("POST /channels/{channel_id}/messages", 404, code=10003)
    with pytest.raises(discord.NotFound) as injected:
        await channel.send("hello?")
    assert (injected.value.code, injected.value.text) == (10003, "Unknown Channel")
    assert (await channel.send("hello again")).content == "hello again"

    deleted = bot.wait_for("guild_channel_delete", timeout=5)
    fake.delete_channel(general)
    assert (await deleted).id == general
    assert bot.get_channel(general) is None
    with pytest.raises(discord.NotFound) as fetched:
        await bot.fetch_channel(general)
    assert fetched.value.code == 10003


async def test_429_is_retried_after_retry_after(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    channel = bot.get_channel(fake.channel_ids["videos"])
    assert isinstance(channel, discord.TextChannel)
    fault = fake.fail_next(r"POST /channels/\d+/messages", 429, retry_after=0.05)

    message = await channel.send("after a rate limit")

    calls = fake.calls_to("POST", r"/channels/\d+/messages")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.05
    assert fault.hits == [calls[0]]
    assert calls[0].response["retry_after"] == 0.05
    assert message.content == "after a rate limit"


async def test_overwrites_shape_permissions_everywhere(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    created = bot.wait_for("guild_channel_create", timeout=5)
    locked = fake.add_channel(
        fake.guild_id,
        "announcements",
        overwrites=[Overwrite(fake.guild_id, deny=Permission.SEND_MESSAGES)],
    )
    channel = await created
    assert isinstance(channel, discord.TextChannel)
    assert not channel.permissions_for(channel.guild.me).send_messages

    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("can I?")
    assert refused.value.code == 50013

    interaction = await fake.send_command(
        "demo", subcommand="hello", user_id=fake.admin_id, channel_id=locked.id
    )
    assert not int(interaction.payload["app_permissions"]) & Permission.SEND_MESSAGES
    member_permissions = int(interaction.payload["member"]["permissions"])
    assert member_permissions & Permission.MANAGE_GUILD
    assert not member_permissions & Permission.ADMINISTRATOR
    assert (await interaction.wait_callback()).type == 4  # answering an interaction needs no channel rights


async def test_late_callback_is_unknown_interaction(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    fake.ack_deadline = 0.0  # every callback is now "after three seconds"
    interaction = await fake.send_command("demo", subcommand="hello", user_id=fake.member_id)

    failed = await fake.wait_for_call("POST /interactions/{webhook_id}/{webhook_token}/callback")

    assert failed.status == 404
    assert failed.response == {"message": "Unknown interaction", "code": 10062}
    assert interaction.callback is None
    await asyncio.wait_for(bot.command_failed.wait(), 5)
    (error,) = bot.command_errors
    assert isinstance(error.__cause__, discord.NotFound)
    bot.command_errors.clear()


async def test_invalid_schema_and_invalid_options_are_refused(
    fake_discord: FakeDiscord, bot: DemoBot
) -> None:
    fake = fake_discord
    with pytest.raises(discord.HTTPException) as refused:
        await bot.http.bulk_upsert_guild_commands(
            fake.application_id, fake.guild_id, [{"name": "Bad Name", "description": "x", "type": 1}]
        )
    assert refused.value.code == 50035
    assert "Command name is invalid" in str(refused.value)

    with pytest.raises(ValueError, match="required options missing"):
        await fake.send_command("demo", subcommand="upload", options={"text": "x"}, user_id=fake.member_id)
    with pytest.raises(ValueError, match="unknown option"):
        await fake.send_command("demo", subcommand="hello", options={"loud": True}, user_id=fake.member_id)


async def test_reconnect_resumes_and_replays_missed_events(fake_discord: FakeDiscord, bot: DemoBot) -> None:
    fake = fake_discord
    created = bot.wait_for("guild_channel_create", timeout=5)

    await fake.drop_connection()
    fake.add_channel(fake.guild_id, "while-you-were-away")  # queued, replayed on RESUME
    await fake.wait_until_ready()

    assert (await created).name == "while-you-were-away"
    assert fake.resume_count == 1
    assert len(fake.identify_payloads) == 1
    interaction = await fake.send_command("demo", subcommand="hello", user_id=fake.member_id)
    assert (await interaction.wait_callback()).type == 4


async def test_close_is_clean(fake_discord: FakeDiscord, recwarn: pytest.WarningsRecorder, caplog) -> None:
    caplog.set_level(logging.WARNING)
    bot, task = await start_bot(fake_discord)

    await bot.close()
    await asyncio.wait_for(task, 5)
    await fake_discord.wait_until_disconnected()
    gc.collect()

    assert task.exception() is None
    assert not fake_discord.connected
    assert [str(w.message) for w in recwarn] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert fake_discord.internal_errors == []


SUBPROCESS_BOT = textwrap.dedent(
    """
    import asyncio
    import os
    import sys

    import discord
    from discord import app_commands
    from discord.ext import commands

    from tests.fakes.discord_api import point_discord_py_at

    api_base, gateway_url, guild_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    point_discord_py_at(api_base, gateway_url)


    class SubprocessBot(commands.Bot):
        def __init__(self) -> None:
            super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
            self.stop_requested = asyncio.Event()

        async def setup_hook(self) -> None:
            guild = discord.Object(guild_id)

            @app_commands.command(description="Answer from another process")
            async def ping(interaction: discord.Interaction) -> None:
                await interaction.response.send_message(f"pong from pid {os.getpid()}")

            @app_commands.command(description="Stop the bot")
            async def shutdown(interaction: discord.Interaction) -> None:
                await interaction.response.send_message("bye", ephemeral=True)
                self.stop_requested.set()

            self.tree.add_command(ping, guild=guild)
            self.tree.add_command(shutdown, guild=guild)
            await self.tree.sync(guild=guild)


    async def main() -> None:
        bot = SubprocessBot()
        async with bot:
            runner = asyncio.create_task(bot.start("subprocess-token"))
            await bot.stop_requested.wait()
            await bot.close()
            await runner


    asyncio.run(main())
    """
)


async def test_bot_in_a_subprocess(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    fake = fake_discord
    script = tmp_path / "bot_process.py"
    script.write_text(SUBPROCESS_BOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        fake.api_base,
        fake.gateway_url,
        str(fake.guild_id),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.wait_until_ready(timeout=15)
        assert fake.identify_payloads[0]["token"] == "subprocess-token"
        assert [c["name"] for c in fake.synced_commands(fake.guild_id)] == ["ping", "shutdown"]

        ping = await fake.send_command("ping", user_id=fake.member_id)
        answer = await ping.wait_callback()
        assert answer.type == 4
        assert answer.content == f"pong from pid {process.pid}"
        assert fake.messages_in(fake.channel_ids["videos"]) == [answer.message]

        stop = await fake.send_command("shutdown", user_id=fake.admin_id)
        assert (await stop.wait_callback()).ephemeral
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    await fake.wait_until_disconnected()
