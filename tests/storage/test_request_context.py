"""The one read a new request starts with (:mod:`storage.request_context`), on both engines: the
server's settings (the defaults stored for a server never seen), the member's ban, the line's pause."""

from __future__ import annotations

import sqlalchemy as sa

from storage import Storage


async def test_a_new_server_gets_its_defaults_and_nothing_else_is_set(storage: Storage) -> None:
    context = await storage.request_context(1, 10)
    assert context.settings.guild_id == 1
    assert context.settings == await storage.get_guild_settings(1)  # stored, with the defaults
    assert (context.ban, context.paused) == (None, False)


async def test_settings_ban_and_pause_come_in_one_read(storage: Storage) -> None:
    await storage.update_guild_settings(1, max_active_jobs=7)
    await storage.ban(1, 10, reason="spam", actor_id=7)
    await storage.pause_provider(status=402, message="no credits")
    await storage.update_guild_settings(1, allowed_channel_ids=[5, 6], blocklist_terms=["gore"])
    statements: list[str] = []
    sa.event.listen(storage.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    context = await storage.request_context(1, 10)
    assert len(statements) == 1  # one statement (on SQLite, one trip with its COMMIT)
    assert context.settings.max_active_jobs == 7
    assert context.settings == await storage.get_guild_settings(1)  # every column, typed as stored
    assert context.ban is not None
    assert context.ban == (await storage.list_bans(1))[0]
    assert (context.ban.guild_id, context.ban.user_id, context.ban.reason, context.ban.banned_by) == (
        1,
        10,
        "spam",
        7,
    )
    assert context.paused
    other = await storage.request_context(1, 11)  # another member of the same server: not banned
    assert (other.ban, other.paused) == (None, True)
    await storage.unban(1, 10)
    await storage.resume_provider()
    lifted = await storage.request_context(1, 10)
    assert (lifted.ban, lifted.paused) == (None, False)
