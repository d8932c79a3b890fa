"""Every documented rule of the two generate payloads, through build_request and the models directly."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ulazai.errors import InvalidRequestError
from ulazai.requests import (
    KLING26_DURATIONS,
    KLING30_DURATIONS,
    MAX_PROMPT_LENGTH,
    AspectRatio,
    GenerationMode,
    Kling26Request,
    Kling30Request,
    KlingModel,
    ProviderRequest,
    Quality,
    VideoSpec,
    build_request,
)

V30 = KlingModel.V3_0
V26 = KlingModel.V2_6
T2V = GenerationMode.TEXT_TO_VIDEO
I2V = GenerationMode.IMAGE_TO_VIDEO
IMG = "https://example.com/source.jpg"
START = "https://example.com/start.jpg"
END = "https://example.com/end.jpg"


def spec(model: KlingModel = V30, prompt: str = "A cat on a skateboard", **fields: Any) -> VideoSpec:
    return VideoSpec(model=model, prompt=prompt, **fields)


def assert_sentence(message: str) -> None:
    """One member-facing sentence: capitalised, one line, a single full stop at the end."""
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert "\n" not in message, message
    assert re.search(r"[.!?]\s+[A-Z]", message[:-1]) is None, message


def refused(
    request: VideoSpec, field: str | None, *fragments: str, instead: str | None = None
) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        build_request(request)
    error = info.value
    assert error.field == field, (error.field, error.message)
    assert error.instead == instead, (error.instead, error.message)
    assert "/video" not in error.message  # the command's name is the cog's to add
    assert_sentence(error.message)
    assert str(error) == error.message
    for fragment in fragments:
        assert fragment in error.message, (fragment, error.message)
    return error


# --- enums and constants -------------------------------------------------------------------------


def test_model_values_labels_and_prefixes() -> None:
    assert V30.value == "kling-3.0"
    assert V26.value == "kling-2.6"
    assert V30.label == "Kling 3.0"
    assert V26.label == "Kling 2.6"
    assert V30.api_prefix == "kling30"
    assert V26.api_prefix == "kling26"


def test_enum_values_match_the_docs() -> None:
    assert [q.value for q in Quality] == ["std", "pro"]
    assert [a.value for a in AspectRatio] == ["16:9", "9:16", "1:1"]
    assert [m.value for m in GenerationMode] == ["text_to_video", "image_to_video"]


def test_constants() -> None:
    assert MAX_PROMPT_LENGTH == {V30: 2500, V26: 2000}
    assert list(KLING30_DURATIONS) == list(range(3, 16))
    assert KLING26_DURATIONS == (5, 10)


def test_video_spec_defaults_and_frozen() -> None:
    s = VideoSpec(model=V30, prompt="x")
    assert (s.mode, s.duration, s.quality, s.aspect_ratio) == (T2V, 5, None, None)
    assert (s.sound, s.multi_shot, s.image_urls, s.directory_optin) == (False, False, (), False)
    assert (s.start_frame_url, s.end_frame_url) == (None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.prompt = "y"  # type: ignore[misc]


# --- payloads: the docs' own examples ------------------------------------------------------------


def test_kling30_docs_text_example() -> None:
    request = build_request(
        spec(
            V30,
            "A cinematic tracking shot following a cyclist through a rainy neon city street.",
            duration=8,
            quality=Quality.PRO,
            sound=True,
            multi_shot=True,
            aspect_ratio=AspectRatio.LANDSCAPE,
            directory_optin=True,
        )
    )
    assert isinstance(request, Kling30Request)
    assert request.to_payload() == {
        "prompt": "A cinematic tracking shot following a cyclist through a rainy neon city street.",
        "generationMode": "text_to_video",
        "durationSeconds": 8,
        "qualityMode": "pro",
        "sound": True,
        "multiShots": True,
        "aspectRatio": "16:9",
        "prompt_directory_optin": True,
    }


def test_kling30_docs_image_example() -> None:
    request = build_request(
        spec(
            V30,
            "The portrait slowly smiles while camera pushes in.",
            mode=I2V,
            image_urls=(IMG,),
            duration=5,
            quality=Quality.STD,
            start_frame_url=START,
            end_frame_url=END,
        )
    )
    assert request.to_payload() == {
        "prompt": "The portrait slowly smiles while camera pushes in.",
        "generationMode": "image_to_video",
        "imageUrls": [IMG],
        "durationSeconds": 5,
        "qualityMode": "std",
        "sound": False,
        "startFrameUrl": START,
        "endFrameUrl": END,
        "prompt_directory_optin": False,
    }


def test_kling30_docs_curl_example() -> None:
    request = build_request(
        spec(
            V30,
            "A heroic wide shot of a spaceship entering orbit above Earth.",
            duration=10,
            quality=Quality.PRO,
            sound=True,
            multi_shot=True,
            aspect_ratio=AspectRatio.LANDSCAPE,
            directory_optin=True,
        )
    )
    assert request.to_payload() == {
        "prompt": "A heroic wide shot of a spaceship entering orbit above Earth.",
        "generationMode": "text_to_video",
        "durationSeconds": 10,
        "qualityMode": "pro",
        "sound": True,
        "multiShots": True,
        "aspectRatio": "16:9",
        "prompt_directory_optin": True,
    }


def test_kling26_docs_text_example() -> None:
    request = build_request(
        spec(
            V26,
            "A dog running through a field of flowers at sunset",
            duration=5,
            aspect_ratio=AspectRatio.LANDSCAPE,
            sound=True,
        )
    )
    assert isinstance(request, Kling26Request)
    assert request.to_payload() == {
        "prompt": "A dog running through a field of flowers at sunset",
        "generationMode": "text_to_video",
        "duration": "5",
        "aspectRatio": "16:9",
        "sound": True,
        "prompt_directory_optin": False,
    }


def test_kling26_docs_image_example() -> None:
    request = build_request(
        spec(
            V26,
            "The dog starts running and playing happily",
            mode=I2V,
            image_urls=("https://example.com/dog.jpg",),
            duration=5,
        )
    )
    assert request.to_payload() == {
        "prompt": "The dog starts running and playing happily",
        "generationMode": "image_to_video",
        "imageUrls": ["https://example.com/dog.jpg"],
        "duration": "5",
        "sound": False,
        "prompt_directory_optin": False,
    }


def test_kling26_docs_curl_example() -> None:
    request = build_request(
        spec(V26, "A dog running through a field at sunset", aspect_ratio=AspectRatio.LANDSCAPE)
    )
    assert request.to_payload() == {
        "prompt": "A dog running through a field at sunset",
        "generationMode": "text_to_video",
        "duration": "5",
        "aspectRatio": "16:9",
        "sound": False,
        "prompt_directory_optin": False,
    }


# --- payloads: what is always (and never) sent ---------------------------------------------------


@pytest.mark.parametrize("model", list(KlingModel))
def test_directory_optin_is_always_sent_and_false_by_default(model: KlingModel) -> None:
    payload = build_request(spec(model)).to_payload()
    assert payload["prompt_directory_optin"] is False
    assert payload["sound"] is False


@pytest.mark.parametrize("model", list(KlingModel))
def test_directory_optin_true_only_when_opted_in(model: KlingModel) -> None:
    assert build_request(spec(model, directory_optin=True)).to_payload()["prompt_directory_optin"] is True


@pytest.mark.parametrize("model", list(KlingModel))
def test_optin_and_sound_sent_even_when_built_directly_with_defaults(model: KlingModel) -> None:
    request: ProviderRequest
    if model is V30:
        request = Kling30Request(
            prompt="x", generation_mode=T2V, duration_seconds=5, quality_mode=Quality.STD
        )
    else:
        request = Kling26Request(prompt="x", generation_mode=T2V)
    payload = request.to_payload()
    assert payload["prompt_directory_optin"] is False
    assert payload["sound"] is False


@pytest.mark.parametrize(("seconds", "sent"), [(5, "5"), (10, "10")])
def test_kling26_duration_is_a_string_and_always_sent(seconds: int, sent: str) -> None:
    payload = build_request(spec(V26, duration=seconds)).to_payload()
    assert payload["duration"] == sent
    assert isinstance(payload["duration"], str)
    assert Kling26Request(prompt="x", generation_mode=T2V).to_payload()["duration"] == "5"


def test_kling26_payload_has_no_kling30_fields() -> None:
    payload = build_request(spec(V26, sound=True, aspect_ratio=AspectRatio.SQUARE)).to_payload()
    for key in ("qualityMode", "durationSeconds", "multiShots", "startFrameUrl", "endFrameUrl"):
        assert key not in payload


def test_kling30_quality_none_means_std_and_is_always_sent() -> None:
    payload = build_request(spec(V30, quality=None)).to_payload()
    assert payload["qualityMode"] == "std"
    assert payload["durationSeconds"] == 5
    assert "duration" not in payload


def test_kling30_multishots_sent_only_when_asked() -> None:
    assert "multiShots" not in build_request(spec(V30)).to_payload()
    assert build_request(spec(V30, multi_shot=True)).to_payload()["multiShots"] is True


def test_none_fields_are_left_out() -> None:
    payload = build_request(spec(V30)).to_payload()
    assert set(payload) == {
        "prompt",
        "generationMode",
        "durationSeconds",
        "qualityMode",
        "sound",
        "prompt_directory_optin",
    }
    assert None not in payload.values()


def test_prompt_is_sent_stripped() -> None:
    assert build_request(spec(V30, "  A cat \n")).to_payload()["prompt"] == "A cat"


def test_payload_is_json_and_model_class_var() -> None:
    request = build_request(spec(V30, mode=I2V, image_urls=(IMG, START)))
    assert json.loads(json.dumps(request.to_payload()))["imageUrls"] == [IMG, START]
    assert Kling30Request.model is V30
    assert Kling26Request.model is V26
    assert build_request(spec(V26)).model is V26


def test_plain_string_values_are_accepted_like_enums() -> None:
    """A stored job or a command choice may hold plain strings; they mean the same thing."""
    loose = VideoSpec(
        model="kling-3.0",  # type: ignore[arg-type]
        prompt="x",
        mode="image_to_video",  # type: ignore[arg-type]
        quality="pro",  # type: ignore[arg-type]
        aspect_ratio="9:16",  # type: ignore[arg-type]
        image_urls=(IMG,),
    )
    payload = build_request(loose).to_payload()
    assert payload["qualityMode"] == "pro"
    assert payload["aspectRatio"] == "9:16"
    assert payload["generationMode"] == "image_to_video"


# --- the models on their own ---------------------------------------------------------------------


def test_models_accept_their_own_payload_by_alias() -> None:
    for request in (
        build_request(spec(V30, mode=I2V, start_frame_url=START, sound=True, multi_shot=True)),
        build_request(spec(V26, mode=I2V, image_urls=(IMG,), duration=10)),
    ):
        assert type(request).model_validate(request.to_payload()) == request
        assert type(request).model_validate_json(json.dumps(request.to_payload())) == request


def test_kling30_direct_aspect_ratio_with_start_frame_raises() -> None:
    with pytest.raises(InvalidRequestError) as info:
        Kling30Request(
            prompt="x",
            generation_mode=I2V,
            duration_seconds=5,
            quality_mode=Quality.STD,
            aspect_ratio=AspectRatio.SQUARE,
            start_frame_url=START,
        )
    assert info.value.field == "aspect_ratio"


def test_kling30_direct_aspect_ratio_with_end_frame_by_alias_raises() -> None:
    body = {
        "prompt": "x",
        "generationMode": "image_to_video",
        "durationSeconds": 5,
        "qualityMode": "std",
        "aspectRatio": "16:9",
        "endFrameUrl": END,
    }
    with pytest.raises(InvalidRequestError) as info:
        Kling30Request.model_validate(body)
    assert info.value.field == "aspect_ratio"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2501}, "prompt"),
        ({"duration_seconds": 2}, "duration"),
        ({"duration_seconds": 16}, "duration"),
        ({"generation_mode": I2V}, "image"),
        ({"generation_mode": I2V, "image_urls": ()}, "image"),
        ({"image_urls": (IMG,)}, "image"),
        ({"start_frame_url": START}, "start_frame"),
        ({"end_frame_url": END}, "end_frame"),
        ({"generation_mode": I2V, "image_urls": ("ftp://example.com/a.jpg",)}, "image"),
        ({"generation_mode": I2V, "start_frame_url": "javascript:alert(1)"}, "start_frame"),
        ({"generation_mode": I2V, "end_frame_url": "end.jpg"}, "end_frame"),
    ],
)
def test_kling30_model_enforces_the_rules(fields: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "prompt": "x",
        "generation_mode": T2V,
        "duration_seconds": 5,
        "quality_mode": Quality.STD,
    }
    values.update(fields)
    with pytest.raises(InvalidRequestError) as info:
        Kling30Request(**values)
    assert info.value.field == field
    assert_sentence(info.value.message)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"duration": "7"}, "duration"),
        ({"duration": "05"}, "duration"),
        ({"duration": ""}, "duration"),
        ({"generation_mode": I2V}, "image"),
        ({"generation_mode": I2V, "image_urls": (IMG, IMG)}, "image"),
        ({"generation_mode": I2V, "image_urls": ("/relative.jpg",)}, "image"),
        ({"generation_mode": I2V, "image_urls": (IMG,), "aspect_ratio": AspectRatio.SQUARE}, "aspect_ratio"),
        ({"image_urls": (IMG,)}, "image"),
    ],
)
def test_kling26_model_enforces_the_rules(fields: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"prompt": "x", "generation_mode": T2V}
    values.update(fields)
    with pytest.raises(InvalidRequestError) as info:
        Kling26Request(**values)
    assert info.value.field == field
    assert_sentence(info.value.message)


@pytest.mark.parametrize(
    "body",
    [
        {"durationSeconds": True},  # a bool is not a duration
        {"durationSeconds": "8"},  # the wire type is an integer
        {"durationSeconds": 8.5},
        {"qualityMode": "ultra"},
        {"aspectRatio": "4:3"},
        {"sound": "yes"},
        {"prompt_directory_optin": 1},
        {"duration": "5"},  # a 2.6 field
        {"seed": 42},  # not documented at all
    ],
)
def test_kling30_model_refuses_wrong_types_and_unknown_keys(body: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "prompt": "x",
        "generationMode": "text_to_video",
        "durationSeconds": 5,
        "qualityMode": "std",
    }
    values.update(body)
    with pytest.raises(ValidationError):
        Kling30Request.model_validate(values)


@pytest.mark.parametrize("missing", ["prompt", "generationMode", "durationSeconds", "qualityMode"])
def test_kling30_required_fields(missing: str) -> None:
    values: dict[str, Any] = {
        "prompt": "x",
        "generationMode": "text_to_video",
        "durationSeconds": 5,
        "qualityMode": "std",
    }
    del values[missing]
    with pytest.raises(ValidationError):
        Kling30Request.model_validate(values)


@pytest.mark.parametrize(
    "body",
    [
        {"duration": 5},  # the wire type is a string
        {"qualityMode": "std"},
        {"multiShots": True},
        {"startFrameUrl": START},
        {"endFrameUrl": END},
        {"durationSeconds": 5},
    ],
)
def test_kling26_model_refuses_wrong_types_and_kling30_fields(body: dict[str, Any]) -> None:
    values: dict[str, Any] = {"prompt": "x", "generationMode": "text_to_video"}
    values.update(body)
    with pytest.raises(ValidationError):
        Kling26Request.model_validate(values)


def test_models_are_frozen() -> None:
    request = build_request(spec(V30))
    with pytest.raises(ValidationError):
        request.prompt = "changed"  # type: ignore[misc]


# --- build_request: prompt -----------------------------------------------------------------------


@pytest.mark.parametrize("model", list(KlingModel))
def test_prompt_at_the_limit_is_accepted(model: KlingModel) -> None:
    prompt = "x" * MAX_PROMPT_LENGTH[model]
    assert build_request(spec(model, prompt)).prompt == prompt


@pytest.mark.parametrize(("model", "limit"), [(V30, "2,500"), (V26, "2,000")])
def test_prompt_one_over_the_limit_is_refused(model: KlingModel, limit: str) -> None:
    refused(spec(model, "x" * (MAX_PROMPT_LENGTH[model] + 1)), "prompt", "1 character too long", limit)


@pytest.mark.parametrize("model", list(KlingModel))
def test_prompt_far_over_the_limit_says_by_how_much(model: KlingModel) -> None:
    refused(spec(model, "x" * (MAX_PROMPT_LENGTH[model] + 250)), "prompt", "250 characters too long")


def test_kling30_limit_applies_to_kling26_separately() -> None:
    assert build_request(spec(V30, "x" * 2400)).prompt == "x" * 2400
    refused(spec(V26, "x" * 2400), "prompt", "400 characters", "Kling 2.6")


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("prompt", ["", " ", "   \n\t  ", "\u3000"])
def test_blank_prompt_is_refused(model: KlingModel, prompt: str) -> None:
    refused(spec(model, prompt), "prompt", "empty")


def test_surrounding_whitespace_does_not_count_against_the_limit() -> None:
    assert build_request(spec(V26, "  " + "x" * 2000 + "  ")).prompt == "x" * 2000


def test_prompt_that_is_not_text_is_refused() -> None:
    refused(spec(V30, None), "prompt")  # type: ignore[arg-type]


# --- build_request: model and mode ---------------------------------------------------------------


@pytest.mark.parametrize("model", ["kling-9", "", "Kling 3.0", None, 3])
def test_unknown_model_is_refused(model: object) -> None:
    refused(VideoSpec(model=model, prompt="x"), "model", "Kling 3.0", "Kling 2.6")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["video", None, "TEXT_TO_VIDEO"])
def test_unknown_mode_is_refused(mode: object) -> None:
    refused(spec(V30, mode=mode), None, "is not known", instead="either")


# --- build_request: duration ---------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [3, 4, 5, 8, 10, 14, 15])
def test_kling30_durations_accepted(seconds: int) -> None:
    assert build_request(spec(V30, duration=seconds)).to_payload()["durationSeconds"] == seconds


@pytest.mark.parametrize("seconds", [2, 16, 0, -5, 100])
def test_kling30_durations_out_of_range_refused(seconds: int) -> None:
    refused(spec(V30, duration=seconds), "duration", "3 to 15", f"{seconds} s")


@pytest.mark.parametrize("seconds", [5, 10])
def test_kling26_durations_accepted(seconds: int) -> None:
    assert build_request(spec(V26, duration=seconds)).to_payload()["duration"] == str(seconds)


@pytest.mark.parametrize("seconds", [7, 3, 15, 0, 6, 9, 11])
def test_kling26_other_durations_refused(seconds: int) -> None:
    error = refused(spec(V26, duration=seconds), "duration", "5 s or 10 s", f"{seconds} s")
    if seconds == 7:
        assert error.message == "Kling 2.6 makes 5 s or 10 s videos; you asked for 7 s."


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("duration", [True, False])
def test_bool_duration_is_refused(model: KlingModel, duration: bool) -> None:
    refused(spec(model, duration=duration), "duration", str(duration))


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("duration", [5.0, "5", "10", None])
def test_non_integer_duration_is_refused(model: KlingModel, duration: object) -> None:
    refused(spec(model, duration=duration), "duration")


# --- build_request: quality ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quality", "sent"), [(None, "std"), (Quality.STD, "std"), (Quality.PRO, "pro"), ("pro", "pro")]
)
def test_kling30_quality(quality: Quality | None, sent: str) -> None:
    assert build_request(spec(V30, quality=quality)).to_payload()["qualityMode"] == sent


@pytest.mark.parametrize("quality", ["ultra", "", "PRO", 1])
def test_kling30_unknown_quality_refused(quality: object) -> None:
    refused(spec(V30, quality=quality), "quality", "std or pro")


@pytest.mark.parametrize("quality", [Quality.STD, Quality.PRO])
def test_kling26_refuses_any_quality(quality: Quality) -> None:
    refused(
        spec(V26, quality=quality),
        "quality",
        "Kling 2.6 has no quality setting",
        quality.value,
        "leave quality empty or choose Kling 3.0",
    )


# --- build_request: sound, multi-shot, opt-in ----------------------------------------------------


@pytest.mark.parametrize("model", list(KlingModel))
def test_sound_on_both_models(model: KlingModel) -> None:
    assert build_request(spec(model, sound=True)).to_payload()["sound"] is True


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("value", [1, "true", None])
def test_flags_must_be_booleans(model: KlingModel, value: object) -> None:
    refused(spec(model, sound=value), "sound")
    refused(spec(model, multi_shot=value), "multi_shot")
    refused(spec(model, directory_optin=value), None)


def test_multi_shot_on_kling30_is_sent() -> None:
    assert build_request(spec(V30, multi_shot=True, mode=I2V, image_urls=(IMG,))).to_payload()["multiShots"]


def test_multi_shot_on_kling26_is_refused() -> None:
    refused(spec(V26, multi_shot=True), "multi_shot", "Kling 2.6", "multi-shot", "Kling 3.0")


# --- build_request: aspect ratio -----------------------------------------------------------------


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("ratio", list(AspectRatio))
def test_aspect_ratio_on_text_to_video(model: KlingModel, ratio: AspectRatio) -> None:
    assert build_request(spec(model, aspect_ratio=ratio)).to_payload()["aspectRatio"] == ratio.value


@pytest.mark.parametrize("model", list(KlingModel))
@pytest.mark.parametrize("ratio", ["4:3", "16x9", "", 1.78])
def test_unknown_aspect_ratio_is_refused(model: KlingModel, ratio: object) -> None:
    refused(spec(model, aspect_ratio=ratio), "aspect_ratio", "16:9, 9:16 or 1:1")


@pytest.mark.parametrize("ratio", list(AspectRatio))
def test_kling30_aspect_ratio_with_image_urls_only_is_allowed(ratio: AspectRatio) -> None:
    payload = build_request(spec(V30, mode=I2V, image_urls=(IMG,), aspect_ratio=ratio)).to_payload()
    assert payload["aspectRatio"] == ratio.value


@pytest.mark.parametrize("ratio", list(AspectRatio))
@pytest.mark.parametrize(
    "frames",
    [{"start_frame_url": START}, {"end_frame_url": END}, {"start_frame_url": START, "end_frame_url": END}],
)
def test_kling30_aspect_ratio_with_a_frame_is_refused(ratio: AspectRatio, frames: dict[str, str]) -> None:
    refused(
        spec(V30, mode=I2V, aspect_ratio=ratio, image_urls=(IMG,), **frames),
        "aspect_ratio",
        ratio.value,
        "leave aspect ratio empty",
    )


@pytest.mark.parametrize("ratio", list(AspectRatio))
def test_kling26_aspect_ratio_on_image_to_video_is_refused(ratio: AspectRatio) -> None:
    refused(
        spec(V26, mode=I2V, image_urls=(IMG,), aspect_ratio=ratio),
        "aspect_ratio",
        ratio.value,
        "leave aspect ratio empty",
    )


# --- build_request: images and frames ------------------------------------------------------------


@pytest.mark.parametrize(
    "images",
    [
        {"image_urls": (IMG,)},
        {"image_urls": (IMG, START, END)},
        {"start_frame_url": START},
        {"end_frame_url": END},
        {"start_frame_url": START, "end_frame_url": END},
        {"image_urls": (IMG,), "start_frame_url": START, "end_frame_url": END},
    ],
)
def test_kling30_image_to_video_inputs(images: dict[str, Any]) -> None:
    payload = build_request(spec(V30, mode=I2V, **images)).to_payload()
    assert payload.get("imageUrls") == (list(images["image_urls"]) if "image_urls" in images else None)
    assert payload.get("startFrameUrl") == images.get("start_frame_url")
    assert payload.get("endFrameUrl") == images.get("end_frame_url")


def test_kling30_image_to_video_without_any_image_is_refused() -> None:
    refused(spec(V30, mode=I2V), "image", "attach one", instead="text_to_video")


def test_kling26_image_to_video_with_no_image_is_refused() -> None:
    refused(spec(V26, mode=I2V), "image", "exactly one image", instead="text_to_video")


def test_kling26_image_to_video_with_one_image() -> None:
    assert build_request(spec(V26, mode=I2V, image_urls=(IMG,))).to_payload()["imageUrls"] == [IMG]


@pytest.mark.parametrize("count", [2, 3])
def test_kling26_image_to_video_with_several_images_is_refused(count: int) -> None:
    refused(spec(V26, mode=I2V, image_urls=(IMG,) * count), "image", "exactly one image", str(count))


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(
    ("frame", "field", "words"),
    [("start_frame_url", "start_frame", "start frame"), ("end_frame_url", "end_frame", "end frame")],
)
def test_kling26_refuses_frames(mode: GenerationMode, frame: str, field: str, words: str) -> None:
    images = (IMG,) if mode is I2V else ()
    refused(spec(V26, mode=mode, image_urls=images, **{frame: START}), field, words, "Kling 3.0")


@pytest.mark.parametrize("model", list(KlingModel))
def test_text_to_video_with_an_image_is_refused(model: KlingModel) -> None:
    refused(spec(model, image_urls=(IMG,)), "image", "takes no image", instead="image_to_video")


@pytest.mark.parametrize(
    ("frame", "field"), [("start_frame_url", "start_frame"), ("end_frame_url", "end_frame")]
)
def test_kling30_text_to_video_with_a_frame_is_refused(frame: str, field: str) -> None:
    refused(spec(V30, **{frame: START}), field, "takes no", instead="image_to_video")


BAD_URLS = [
    "ftp://example.com/a.jpg",
    "javascript:alert(1)",
    "/relative/a.jpg",
    "a.jpg",
    "//example.com/a.jpg",
    "file:///etc/passwd",
    "data:image/png;base64,iVBORw0KGgo=",
    "http://",
    "https:///a.jpg",
    "https://exa mple.com/a.jpg",
    "https://example.com/a.jpg\n",
    "http://example.com:99999/a.jpg",
    "http://[::1/a.jpg",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("model", list(KlingModel))
def test_bad_image_url_is_refused(model: KlingModel, url: str) -> None:
    error = refused(spec(model, mode=I2V, image_urls=(url,)), "image", "http")
    assert repr(url)[:40] in error.message


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(
    ("frame", "field"), [("start_frame_url", "start_frame"), ("end_frame_url", "end_frame")]
)
def test_bad_frame_url_is_refused(url: str, frame: str, field: str) -> None:
    refused(spec(V30, mode=I2V, **{frame: url}), field, "http", field.replace("_", " "))


def test_bad_url_among_good_ones_is_refused() -> None:
    refused(spec(V30, mode=I2V, image_urls=(IMG, "ftp://example.com/b.jpg")), "image", "ftp://")


def test_long_bad_url_is_shortened_in_the_message() -> None:
    error = refused(spec(V30, mode=I2V, image_urls=("ftp://" + "x" * 5000,)), "image")
    assert len(error.message) < 300


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.jpg",
        "HTTPS://EXAMPLE.COM/A.JPG",
        "https://127.0.0.1:8080/x.png",
        "https://[::1]/x.webp",
        "https://cdn.example.net/attachments/1/2/a.png?ex=1&is=2&hm=abc",
    ],
)
def test_good_urls_are_accepted(url: str) -> None:
    assert build_request(spec(V30, mode=I2V, image_urls=(url,))).to_payload()["imageUrls"] == [url]
    assert build_request(spec(V30, mode=I2V, start_frame_url=url)).to_payload()["startFrameUrl"] == url
    assert build_request(spec(V26, mode=I2V, image_urls=(url,))).to_payload()["imageUrls"] == [url]


def test_non_string_url_becomes_invalid_request_error() -> None:
    """Pydantic's own type errors reach callers as InvalidRequestError with the option's name."""
    refused(spec(V30, mode=I2V, image_urls=(42,)), "image", "42")
    refused(spec(V30, mode=I2V, start_frame_url=b"https://x/y"), "start_frame")


# --- properties ----------------------------------------------------------------------------------

urls = st.builds(
    "{}://{}.example/{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.-]{0,30}", fullmatch=True),
)
prompts = st.text(min_size=1, max_size=200).filter(lambda s: s.strip() != "")


@st.composite
def valid_specs(draw: st.DrawFn) -> VideoSpec:
    model = draw(st.sampled_from(list(KlingModel)))
    mode = draw(st.sampled_from(list(GenerationMode)))
    optin = draw(st.booleans())
    sound = draw(st.booleans())
    prompt = draw(prompts)
    if model is V30:
        frames = draw(st.sampled_from(["none", "start", "end", "both"])) if mode is I2V else "none"
        images = (
            tuple(draw(st.lists(urls, min_size=0 if frames != "none" else 1, max_size=3)))
            if mode is I2V
            else ()
        )
        return VideoSpec(
            model=model,
            prompt=prompt,
            mode=mode,
            duration=draw(st.integers(3, 15)),
            quality=draw(st.sampled_from([None, *Quality])),
            aspect_ratio=None if frames != "none" else draw(st.sampled_from([None, *AspectRatio])),
            sound=sound,
            multi_shot=draw(st.booleans()),
            image_urls=images,
            start_frame_url=draw(urls) if frames in ("start", "both") else None,
            end_frame_url=draw(urls) if frames in ("end", "both") else None,
            directory_optin=optin,
        )
    return VideoSpec(
        model=model,
        prompt=prompt,
        mode=mode,
        duration=draw(st.sampled_from(KLING26_DURATIONS)),
        aspect_ratio=draw(st.sampled_from([None, *AspectRatio])) if mode is T2V else None,
        sound=sound,
        image_urls=(draw(urls),) if mode is I2V else (),
        directory_optin=optin,
    )


@given(valid_specs())
def test_every_valid_spec_builds_a_payload_that_validates_back(video: VideoSpec) -> None:
    request = build_request(video)
    assert request.model is video.model
    payload = request.to_payload()
    assert payload["prompt"] == video.prompt.strip()
    assert payload["prompt_directory_optin"] is video.directory_optin
    assert payload["sound"] is video.sound
    assert type(request).model_validate_json(json.dumps(payload)) == request


@given(st.integers(-1000, 1000))
def test_kling30_duration_accepted_exactly_in_3_to_15(seconds: int) -> None:
    if 3 <= seconds <= 15:
        assert build_request(spec(V30, duration=seconds)).to_payload()["durationSeconds"] == seconds
    else:
        refused(spec(V30, duration=seconds), "duration", f"{seconds} s")


@given(st.integers(-1000, 1000))
def test_kling26_duration_accepted_exactly_5_or_10(seconds: int) -> None:
    if seconds in (5, 10):
        assert build_request(spec(V26, duration=seconds)).to_payload()["duration"] == str(seconds)
    else:
        refused(spec(V26, duration=seconds), "duration", f"{seconds} s")


@given(st.sampled_from(list(KlingModel)), st.integers(1, 3000))
def test_prompt_length_limit(model: KlingModel, length: int) -> None:
    video = spec(model, "y" * length)
    if length <= MAX_PROMPT_LENGTH[model]:
        assert build_request(video).prompt == "y" * length
    else:
        refused(video, "prompt", "too long")


@given(
    st.sampled_from(["ftp", "file", "javascript", "data", "ws", "wss", "gopher", "mailto", "httpx", ""]),
    st.from_regex(r"[a-z]{1,10}", fullmatch=True),
)
def test_non_http_schemes_are_refused(scheme: str, host: str) -> None:
    refused(spec(V30, mode=I2V, image_urls=(f"{scheme}://{host}.example/a.jpg",)), "image")


OPTION_NAMES = {
    None,
    "prompt",
    "model",
    "duration",
    "quality",
    "aspect_ratio",
    "sound",
    "multi_shot",
    "image",
    "start_frame",
    "end_frame",
}

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.sampled_from([*KlingModel, *GenerationMode, *Quality, *AspectRatio, IMG, "kling-2.6", "5"]),
)


@given(
    st.builds(
        VideoSpec,
        model=anything,
        prompt=st.one_of(anything, prompts),
        mode=anything,
        duration=anything,
        quality=anything,
        aspect_ratio=anything,
        sound=anything,
        multi_shot=anything,
        image_urls=st.tuples() | st.tuples(anything) | st.tuples(st.just(IMG), anything),
        start_frame_url=anything,
        end_frame_url=anything,
        directory_optin=anything,
    )
)
def test_only_invalid_request_error_ever_escapes(video: VideoSpec) -> None:
    outcome: ProviderRequest | InvalidRequestError
    try:
        outcome = build_request(video)
    except InvalidRequestError as error:
        outcome = error
    if isinstance(outcome, InvalidRequestError):
        # Not assert_sentence: the message may quote the junk value, which can hold anything.
        assert outcome.message[0].isupper()
        assert outcome.message.endswith(".")
        assert outcome.field in OPTION_NAMES
    else:
        assert isinstance(outcome, Kling30Request | Kling26Request)
