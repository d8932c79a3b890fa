"""The words a member reads for a refusal: the provider's rule, then the command to use instead."""

from __future__ import annotations

import pytest

from cogs.common import user_message_for
from ulazai.errors import InvalidRequestError
from ulazai.requests import GenerationMode, KlingModel, VideoSpec, build_request


def refusal(spec: VideoSpec) -> str:
    with pytest.raises(InvalidRequestError) as info:
        build_request(spec)
    text = user_message_for(info.value)
    assert text is not None
    return text


def test_a_text_request_with_an_image_points_to_video_image() -> None:
    text = refusal(VideoSpec(model=KlingModel.V3_0, prompt="p", image_urls=("https://u/1",)))
    assert (
        text == "A text-to-video request takes no image. Use `/video image` to start from an image or frames."
    )


def test_an_image_request_without_an_image_points_to_video_text() -> None:
    text = refusal(VideoSpec(model=KlingModel.V2_6, prompt="p", mode=GenerationMode.IMAGE_TO_VIDEO))
    assert text.endswith("attach one. Or use `/video text` to start from the prompt alone.")


def test_a_rule_without_another_command_is_the_rule_alone() -> None:
    text = refusal(VideoSpec(model=KlingModel.V2_6, prompt="p", duration=7))
    assert "/video" not in text
