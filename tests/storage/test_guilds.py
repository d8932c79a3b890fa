"""Guild settings: documented defaults, validated changes, role allowances, the bot's key/value."""

from __future__ import annotations

import pytest

from storage import COMMAND_TREE_HASH_KEY, InvalidSetting, Storage


async def test_defaults(storage: Storage) -> None:
    settings = await storage.get_guild_settings(1)
    assert (settings.default_model, settings.allowance_credits, settings.allowance_period) == (
        "kling-3.0",
        300,
        "weekly",
    )
    assert (settings.max_active_jobs, settings.budget_credits, settings.directory_discount) == (
        2,
        None,
        False,
    )
    assert (settings.allowed_channel_ids, settings.blocklist_terms, settings.role_allowances) == ([], [], {})
    assert settings.review_channel_id is None
    assert settings.audit_channel_id is None


async def test_changes_are_stored(storage: Storage) -> None:
    await storage.update_guild_settings(
        1,
        allowed_channel_ids=[11, 12, 11],
        review_channel_id=13,
        audit_channel_id=14,
        blocklist_terms=[" gore ", "", "nsfw"],
        default_model="kling-2.6",
        directory_discount=True,
        max_active_jobs=4,
        budget_credits=10_000,
        budget_period="daily",
    )
    await storage.set_role_allowance(1, 501, 900)
    await storage.set_role_allowance(1, 502, 100)
    await storage.set_role_allowance(1, 502, None)
    settings = await storage.get_guild_settings(1)
    assert settings.allowed_channel_ids == [11, 12]
    assert (settings.review_channel_id, settings.audit_channel_id) == (13, 14)
    assert settings.blocklist_terms == ["gore", "nsfw"]
    assert (settings.default_model, settings.directory_discount, settings.max_active_jobs) == (
        "kling-2.6",
        True,
        4,
    )
    assert (settings.budget_credits, settings.budget_period) == (10_000, "daily")
    assert settings.role_allowances == {"501": 900}
    assert settings.allowance_for([501, 777]) == 900
    assert settings.allowance_for([]) == 300
    await storage.update_guild_settings(1, review_channel_id=None, budget_credits=None)
    settings = await storage.get_guild_settings(1)
    assert (settings.review_channel_id, settings.budget_credits) == (None, None)
    assert (await storage.get_guild_settings(2)).allowed_channel_ids == []  # guilds are separate


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"default_model": "kling-9"}, "default_model"),
        ({"allowance_credits": -1}, "allowance_credits"),
        ({"allowance_period": "hourly"}, "allowance_period"),
        ({"budget_period": "weekly"}, "budget_period"),
        ({"max_active_jobs": 0}, "max_active_jobs"),
        ({"role_allowances": {5: -3}}, "role_allowances"),
        ({"allowed_channel_ids": [0]}, "allowed_channel_ids"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_values_are_refused(storage: Storage, changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSetting) as refused:
        await storage.update_guild_settings(1, **changes)  # type: ignore[arg-type]
    assert refused.value.field == field


async def test_bot_state_says_when_a_value_changed(storage: Storage) -> None:
    assert await storage.get_bot_state(COMMAND_TREE_HASH_KEY) is None
    assert await storage.set_bot_state(COMMAND_TREE_HASH_KEY, "abc") is True
    assert await storage.set_bot_state(COMMAND_TREE_HASH_KEY, "abc") is False
    assert await storage.set_bot_state(COMMAND_TREE_HASH_KEY, "def") is True
    assert await storage.get_bot_state(COMMAND_TREE_HASH_KEY) == "def"
