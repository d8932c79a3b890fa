"""The modals of Continue, Remix and Animate with Kling, sent *detached*: discord.py never keeps them.

A modal's submission is handled from its custom_id and values alone, by one listener
(:mod:`cogs.iterate`), the same way before and after a restart, and exactly once (discord.py ignores a
modal it does not hold). The buttons that open them are in :mod:`cogs.views`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import discord

from generation.iterating import MAX_MODAL_PROMPT, MODAL_DURATIONS
from generation.shapes import DEFAULT_DURATION


class DetachedModal(discord.ui.Modal):
    """A modal discord.py does not keep: it stores only modals still listening, and this one never is.

    Its submission is handled from its custom_id and values alone, by one listener (``cogs.iterate``),
    the same way before and after a restart, and exactly once (discord.py ignores a modal it does not
    hold). ``template`` matches the custom_id and names what it carries.
    """

    template: ClassVar[re.Pattern[str]]

    def __init__(self, *, title: str, custom_id: str) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=None)
        self.stop()

    @classmethod
    def match(cls, custom_id: str) -> dict[str, int] | None:
        found = cls.template.fullmatch(custom_id)
        return None if found is None else {key: int(value) for key, value in found.groupdict().items()}


def prompt_input(default: str | None = None) -> discord.ui.TextInput[Any]:
    return discord.ui.TextInput(
        label="Prompt",
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        required=True,
        max_length=MAX_MODAL_PROMPT,
        default=default,
        placeholder=None if default else "What should the video show?",
    )


def duration_input(default: int) -> discord.ui.TextInput[Any]:
    low, high = MODAL_DURATIONS.start, MODAL_DURATIONS.stop - 1
    return discord.ui.TextInput(
        label=f"Duration in seconds ({low}–{high}, optional)",
        custom_id="duration",
        required=False,
        max_length=10,
        placeholder=f"{default} if left empty",
    )


class ContinueModal(DetachedModal):
    template = re.compile(r"video:continue-modal:(?P<job_id>\d+)")

    def __init__(self, job_id: int, duration: int) -> None:
        super().__init__(title="Continue this video", custom_id=f"video:continue-modal:{job_id}")
        self.add_item(prompt_input())
        self.add_item(duration_input(duration))


class RemixModal(DetachedModal):
    template = re.compile(r"video:remix-modal:(?P<job_id>\d+)")

    def __init__(self, job_id: int, prompt: str) -> None:
        super().__init__(title="Remix this video", custom_id=f"video:remix-modal:{job_id}")
        self.add_item(prompt_input(prompt[:MAX_MODAL_PROMPT]))


class AnimateModal(DetachedModal):
    """Carries the source message and which of its attachments, to read the image afresh on submit."""

    template = re.compile(r"video:animate-modal:(?P<channel_id>\d+):(?P<message_id>\d+):(?P<index>\d+)")

    def __init__(self, channel_id: int, message_id: int, index: int) -> None:
        super().__init__(
            title="Animate this image", custom_id=f"video:animate-modal:{channel_id}:{message_id}:{index}"
        )
        self.add_item(prompt_input())
        self.add_item(duration_input(DEFAULT_DURATION))


#: The modals whose submissions ``cogs.iterate`` handles.
DETACHED_MODALS: tuple[type[DetachedModal], ...] = (ContinueModal, RemixModal, AnimateModal)


def modal_values(data: Mapping[str, Any]) -> dict[str, str]:
    """The text inputs of a modal submission's ``data``, by custom_id (rows and labels alike)."""
    values: dict[str, str] = {}

    def walk(components: Any) -> None:
        for component in components or ():
            if component.get("type") == 1:
                walk(component.get("components"))
            elif component.get("type") == 18:
                walk([component.get("component") or {}])
            elif component.get("type") == 4 and "custom_id" in component:
                values[component["custom_id"]] = str(component.get("value") or "")

    walk(data.get("components"))
    return values
