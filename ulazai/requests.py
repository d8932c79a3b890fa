"""What a member asks for, and the exact payloads the provider accepts.

Two layers, because the bot needs both:

* :class:`VideoSpec` is model-agnostic: it is what a slash command collects and what a job stores, so a
  job can be shown, priced and regenerated without knowing the wire format.
* :class:`Kling30Request` and :class:`Kling26Request` are the two documented JSON bodies, field for
  field (the provider's API pages; the README sums up where they are silent). Their validators
  enforce every documented rule, so a payload the provider forbids cannot be built at all, not even
  by code that skips :func:`build_request`. The fake provider (``sandbox/``) checks incoming bodies
  with rules of its own, written apart from these, so the two check each other.

:func:`build_request` turns a spec into the right payload. Every refusal is an
:class:`~ulazai.errors.InvalidRequestError` whose message is one sentence a Discord member can act
on and whose ``field`` is the slash-command option to change, so the cog can show it as it is.

Where the pages are silent the project decides, and says so here:

* ``prompt_directory_optin`` is always sent, ``false`` unless the member's server opted in: Kling 2.6
  defaults it to true, which would publish the member's prompt and video.
* Kling 2.6 takes ``aspectRatio`` only for text-to-video (its page documents it only there); for
  image-to-video the image sets the shape, so we refuse the option rather than send it.
* The prompt is sent stripped of surrounding whitespace; the length limit counts what is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, Self, TypeAlias, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ulazai.errors import InvalidRequestError

__all__ = [
    "KLING26_DURATIONS",
    "KLING30_DURATIONS",
    "MAX_PROMPT_LENGTH",
    "AspectRatio",
    "GenerationMode",
    "Kling26Request",
    "Kling30Request",
    "KlingModel",
    "ProviderRequest",
    "Quality",
    "VideoSpec",
    "build_request",
]


class KlingModel(StrEnum):
    """The two model versions UlazAI offers; the value is what jobs store."""

    V3_0 = "kling-3.0"
    V2_6 = "kling-2.6"

    @property
    def label(self) -> str:
        """The name members see."""
        return "Kling 3.0" if self is KlingModel.V3_0 else "Kling 2.6"

    @property
    def api_prefix(self) -> str:
        """The URL path segment of this model's endpoints (``/kling30/api/...``)."""
        return "kling30" if self is KlingModel.V3_0 else "kling26"


class Quality(StrEnum):
    """Kling 3.0's ``qualityMode``; Kling 2.6 has no quality setting."""

    STD = "std"
    PRO = "pro"


class AspectRatio(StrEnum):
    """The three documented aspect ratios, for both models."""

    LANDSCAPE = "16:9"
    PORTRAIT = "9:16"
    SQUARE = "1:1"


class GenerationMode(StrEnum):
    """The documented ``generationMode`` values."""

    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"


#: Documented prompt limits, in characters.
MAX_PROMPT_LENGTH: Final[dict[KlingModel, int]] = {KlingModel.V3_0: 2500, KlingModel.V2_6: 2000}
#: Kling 3.0 takes any whole number of seconds from 3 to 15.
KLING30_DURATIONS: Final = range(3, 16)
#: Kling 2.6 makes 5 s or 10 s clips only (sent as the strings "5" and "10").
KLING26_DURATIONS: Final = (5, 10)


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """What a member asked for, independent of the wire format.

    It is deliberately not validated on construction: a job stores it as it was asked, and
    :func:`build_request` is the one place that decides whether it can be sent (and says why not).
    ``quality`` ``None`` means std on Kling 3.0 and must stay ``None`` on Kling 2.6.
    ``directory_optin`` is true only when the server's admins turned the Prompt Directory discount on.
    """

    model: KlingModel
    prompt: str
    mode: GenerationMode = GenerationMode.TEXT_TO_VIDEO
    duration: int = 5
    quality: Quality | None = None
    aspect_ratio: AspectRatio | None = None
    sound: bool = False
    multi_shot: bool = False
    image_urls: tuple[str, ...] = ()
    start_frame_url: str | None = None
    end_frame_url: str | None = None
    directory_optin: bool = False


# --- the rules, shared by build_request and the models' validators ---------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _shown(value: object, limit: int = 80) -> str:
    """A value quoted for a member, cut short so a pasted essay cannot flood the reply."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_prompt(model: KlingModel, prompt: str) -> None:
    if not prompt.strip():
        raise InvalidRequestError("Your prompt is empty; describe the video you want.", field="prompt")
    limit = MAX_PROMPT_LENGTH[model]
    if len(prompt) > limit:
        over = len(prompt) - limit
        raise InvalidRequestError(
            f"Your prompt is {_plural(over, 'character')} too long for {model.label}, "
            f"which accepts at most {limit:,}; shorten it and try again.",
            field="prompt",
        )


def _duration_shown(duration: object) -> str:
    if isinstance(duration, int) and not isinstance(duration, bool):
        return f"{duration} s"
    if isinstance(duration, str) and duration.isdecimal():
        return f"{duration} s"
    return _shown(duration)


def _check_duration(model: KlingModel, duration: object) -> int:
    """The duration in whole seconds, or the member-facing refusal (``bool`` is not a number here)."""
    allowed = KLING30_DURATIONS if model is KlingModel.V3_0 else KLING26_DURATIONS
    if isinstance(duration, int) and not isinstance(duration, bool) and duration in allowed:
        return duration
    if model is KlingModel.V3_0:
        message = (
            f"Kling 3.0 makes videos of {KLING30_DURATIONS.start} to {KLING30_DURATIONS.stop - 1} "
            f"whole seconds; you asked for {_duration_shown(duration)}."
        )
    else:
        message = f"Kling 2.6 makes 5 s or 10 s videos; you asked for {_duration_shown(duration)}."
    raise InvalidRequestError(message, field="duration")


def _check_url(url: str, field: str) -> None:
    """Only absolute http(s) URLs with a host: the provider fetches them, and nothing else is safe."""
    what = field.replace("_", " ")
    if not _is_http_url(url):
        raise InvalidRequestError(
            f"The {what} link {_shown(url)} is not a full http:// or https:// address; "
            "attach the file again or paste a link that starts with https://.",
            field=field,
        )


def _is_http_url(url: str) -> bool:
    if not url or any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(host)


def _check_no_images_for_text(
    image_urls: tuple[str, ...] | None, start_frame_url: str | None, end_frame_url: str | None
) -> None:
    if image_urls:
        raise InvalidRequestError(
            "A text-to-video request takes no image.", field="image", instead="image_to_video"
        )
    if start_frame_url is not None:
        raise InvalidRequestError(
            "A text-to-video request takes no start frame.",
            field="start_frame",
            instead="image_to_video",
        )
    if end_frame_url is not None:
        raise InvalidRequestError(
            "A text-to-video request takes no end frame.",
            field="end_frame",
            instead="image_to_video",
        )


def _check_urls(
    image_urls: tuple[str, ...] | None, start_frame_url: str | None, end_frame_url: str | None
) -> None:
    for url in image_urls or ():
        _check_url(url, "image")
    if start_frame_url is not None:
        _check_url(start_frame_url, "start_frame")
    if end_frame_url is not None:
        _check_url(end_frame_url, "end_frame")


def _check_kling30_images(
    mode: GenerationMode,
    image_urls: tuple[str, ...] | None,
    start_frame_url: str | None,
    end_frame_url: str | None,
    aspect_ratio: AspectRatio | None,
) -> None:
    if image_urls is not None and not image_urls:
        raise InvalidRequestError(
            "The image list is empty; attach at least one image, or leave the image option out.",
            field="image",
        )
    if mode is GenerationMode.TEXT_TO_VIDEO:
        _check_no_images_for_text(image_urls, start_frame_url, end_frame_url)
    elif not image_urls and start_frame_url is None and end_frame_url is None:
        raise InvalidRequestError(
            "Image-to-video needs an image, a start frame or an end frame; attach one.",
            field="image",
            instead="text_to_video",
        )
    _check_urls(image_urls, start_frame_url, end_frame_url)
    if aspect_ratio is not None and (start_frame_url is not None or end_frame_url is not None):
        raise InvalidRequestError(
            f"Kling 3.0 takes its shape from the start or end frame, so aspect ratio {aspect_ratio} "
            "cannot be used with one; leave aspect ratio empty or remove the frame.",
            field="aspect_ratio",
        )


def _check_kling26_images(
    mode: GenerationMode, image_urls: tuple[str, ...] | None, aspect_ratio: AspectRatio | None
) -> None:
    if mode is GenerationMode.TEXT_TO_VIDEO:
        _check_no_images_for_text(image_urls, None, None)
        return
    count = len(image_urls or ())
    if count == 0:
        raise InvalidRequestError(
            "Kling 2.6 image-to-video needs exactly one image; attach one.",
            field="image",
            instead="text_to_video",
        )
    if count > 1:
        raise InvalidRequestError(
            f"Kling 2.6 animates exactly one image, but you gave {count}; attach just one, "
            "or choose Kling 3.0.",
            field="image",
        )
    _check_urls(image_urls, None, None)
    if aspect_ratio is not None:
        raise InvalidRequestError(
            f"Kling 2.6 takes its shape from the image it animates, so aspect ratio {aspect_ratio} "
            "cannot be used here; leave aspect ratio empty.",
            field="aspect_ratio",
        )


# --- the wire payloads ---------------------------------------------------------------------------


class _Payload(BaseModel):
    """Shared configuration: immutable, no unknown keys, built by Python name or by JSON alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: Keys sent even when they equal a default; see :meth:`to_payload`.
    _always_sent: ClassVar[tuple[str, ...]] = ("prompt_directory_optin", "sound")

    def to_payload(self) -> dict[str, Any]:
        """The JSON body: documented names, ``None`` fields left out, enums as their values.

        ``prompt_directory_optin`` and ``sound`` are always present, so the provider's defaults
        (2.6 opts in by default, which publishes the prompt) never decide for the member.
        """
        payload = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name in self._always_sent:
            payload[name] = getattr(self, name)
        return payload


class Kling30Request(_Payload):
    """The body of ``POST /kling30/api/generate/``.

    ``qualityMode`` and ``durationSeconds`` are required, as documented; ``multiShots`` is sent only
    when requested (as in the docs' image-to-video example).
    """

    model: ClassVar[KlingModel] = KlingModel.V3_0

    prompt: StrictStr
    generation_mode: GenerationMode = Field(alias="generationMode")
    duration_seconds: StrictInt = Field(alias="durationSeconds")
    quality_mode: Quality = Field(alias="qualityMode")
    sound: StrictBool = False
    multi_shots: StrictBool | None = Field(default=None, alias="multiShots")
    aspect_ratio: AspectRatio | None = Field(default=None, alias="aspectRatio")
    image_urls: tuple[StrictStr, ...] | None = Field(default=None, alias="imageUrls")
    start_frame_url: StrictStr | None = Field(default=None, alias="startFrameUrl")
    end_frame_url: StrictStr | None = Field(default=None, alias="endFrameUrl")
    prompt_directory_optin: StrictBool = False

    @model_validator(mode="after")
    def _enforce_documented_rules(self) -> Self:
        # InvalidRequestError is not a ValueError, so pydantic lets it through unchanged.
        _check_prompt(self.model, self.prompt)
        _check_duration(self.model, self.duration_seconds)
        _check_kling30_images(
            self.generation_mode,
            self.image_urls,
            self.start_frame_url,
            self.end_frame_url,
            self.aspect_ratio,
        )
        return self


class Kling26Request(_Payload):
    """The body of ``POST /kling26/api/generate/``.

    ``duration`` is a string on this model (``"5"`` or ``"10"``) and is always sent, so the
    provider's default never decides the price. There is no quality, multi-shot or frame field.
    """

    model: ClassVar[KlingModel] = KlingModel.V2_6
    _always_sent: ClassVar[tuple[str, ...]] = ("prompt_directory_optin", "sound", "duration")

    prompt: StrictStr
    generation_mode: GenerationMode = Field(alias="generationMode")
    duration: StrictStr = "5"
    aspect_ratio: AspectRatio | None = Field(default=None, alias="aspectRatio")
    sound: StrictBool = False
    image_urls: tuple[StrictStr, ...] | None = Field(default=None, alias="imageUrls")
    prompt_directory_optin: StrictBool = False

    @model_validator(mode="after")
    def _enforce_documented_rules(self) -> Self:
        _check_prompt(self.model, self.prompt)
        if self.duration not in {str(seconds) for seconds in KLING26_DURATIONS}:
            raise InvalidRequestError(
                f"Kling 2.6 makes 5 s or 10 s videos; you asked for {_duration_shown(self.duration)}.",
                field="duration",
            )
        _check_kling26_images(self.generation_mode, self.image_urls, self.aspect_ratio)
        return self


ProviderRequest: TypeAlias = Kling30Request | Kling26Request


# --- from a spec to a payload --------------------------------------------------------------------

_E = TypeVar("_E", bound=StrEnum)

#: Payload names (alias or Python name) -> the slash-command option a member can change.
_OPTION_FOR: Final[dict[str, str]] = {
    "prompt": "prompt",
    "durationSeconds": "duration",
    "duration_seconds": "duration",
    "duration": "duration",
    "qualityMode": "quality",
    "quality_mode": "quality",
    "sound": "sound",
    "multiShots": "multi_shot",
    "multi_shots": "multi_shot",
    "aspectRatio": "aspect_ratio",
    "aspect_ratio": "aspect_ratio",
    "imageUrls": "image",
    "image_urls": "image",
    "startFrameUrl": "start_frame",
    "start_frame_url": "start_frame",
    "endFrameUrl": "end_frame",
    "end_frame_url": "end_frame",
}


def _coerce(
    enum: type[_E], value: object, message: str, field: str | None, *, instead: str | None = None
) -> _E:
    """Accept the enum or its plain value (a stored job or a choice may hold the string)."""
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise InvalidRequestError(message, field=field, instead=instead)


def _check_flag(value: object, message: str, field: str | None) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(message, field=field)
    return value


def _from_validation_error(exc: ValidationError) -> InvalidRequestError:
    """A type error the explicit checks did not foresee, still phrased for a member."""
    first = exc.errors()[0]
    loc = first.get("loc", ())
    name = str(loc[0]) if loc else ""
    option = _OPTION_FOR.get(name)
    shown = _shown(first.get("input"))
    if option is None:
        return InvalidRequestError(f"This request has a value {shown} the provider cannot take; start again.")
    what = option.replace("_", " ")
    return InvalidRequestError(
        f"The {what} value {shown} is not valid; change the {what} option and try again.", field=option
    )


def build_request(spec: VideoSpec) -> ProviderRequest:
    """Check ``spec`` against the chosen model's documented rules and build its payload.

    Raises :class:`~ulazai.errors.InvalidRequestError` (and nothing else) for every violation, with
    a one-sentence message naming what to change and ``field`` set to the slash-command option.
    """
    model = _coerce(
        KlingModel,
        spec.model,
        f"Model {_shown(spec.model)} is not one this bot offers; choose Kling 3.0 or Kling 2.6.",
        "model",
    )
    if not isinstance(spec.prompt, str):
        raise InvalidRequestError("Your prompt must be text; describe the video you want.", field="prompt")
    prompt = spec.prompt.strip()
    _check_prompt(model, prompt)
    mode = _coerce(
        GenerationMode,
        spec.mode,
        f"Generation mode {_shown(spec.mode)} is not known.",
        None,
        instead="either",
    )
    duration = _check_duration(model, spec.duration)
    sound = _check_flag(spec.sound, f"Sound must be on or off; {_shown(spec.sound)} is neither.", "sound")
    multi_shot = _check_flag(
        spec.multi_shot, f"Multi-shot must be on or off; {_shown(spec.multi_shot)} is neither.", "multi_shot"
    )
    optin = _check_flag(
        spec.directory_optin,
        f"The Prompt Directory opt-in must be on or off; {_shown(spec.directory_optin)} is neither.",
        None,
    )
    aspect_ratio = (
        None
        if spec.aspect_ratio is None
        else _coerce(
            AspectRatio,
            spec.aspect_ratio,
            f"Aspect ratio must be 16:9, 9:16 or 1:1; {_shown(spec.aspect_ratio)} is not one of them.",
            "aspect_ratio",
        )
    )
    image_urls = tuple(spec.image_urls) or None

    try:
        if model is KlingModel.V3_0:
            quality = (
                Quality.STD
                if spec.quality is None
                else _coerce(
                    Quality,
                    spec.quality,
                    f"Quality must be std or pro; {_shown(spec.quality)} is not one of them.",
                    "quality",
                )
            )
            return Kling30Request(
                prompt=prompt,
                generation_mode=mode,
                duration_seconds=duration,
                quality_mode=quality,
                sound=sound,
                multi_shots=True if multi_shot else None,
                aspect_ratio=aspect_ratio,
                image_urls=image_urls,
                start_frame_url=spec.start_frame_url,
                end_frame_url=spec.end_frame_url,
                prompt_directory_optin=optin,
            )
        if spec.quality is not None:
            raise InvalidRequestError(
                f"Kling 2.6 has no quality setting, so {_shown(str(spec.quality))} cannot be used; "
                "leave quality empty or choose Kling 3.0.",
                field="quality",
            )
        if multi_shot:
            raise InvalidRequestError(
                "Kling 2.6 cannot make multi-shot videos; turn multi-shot off or choose Kling 3.0.",
                field="multi_shot",
            )
        for url, field, what in (
            (spec.start_frame_url, "start_frame", "start frame"),
            (spec.end_frame_url, "end_frame", "end frame"),
        ):
            if url is not None:
                raise InvalidRequestError(
                    f"Kling 2.6 has no {what}; use the image option instead, or choose Kling 3.0.",
                    field=field,
                )
        return Kling26Request(
            prompt=prompt,
            generation_mode=mode,
            duration=str(duration),
            aspect_ratio=aspect_ratio,
            sound=sound,
            image_urls=image_urls,
            prompt_directory_optin=optin,
        )
    except ValidationError as exc:
        raise _from_validation_error(exc) from None
