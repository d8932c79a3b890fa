"""One request, its shapes, and the one mapping between them.

A request is typed by a member (:class:`VideoOptions`), checked against the provider's rules as a
:class:`~ulazai.requests.VideoSpec`, stored as a :class:`~storage.JobRequest` (the job's columns), and
read back from a :class:`~storage.Job` as a spec again when the worker submits it or a member presses
Regenerate. Every field copy between those shapes is here, once, so a new option is added in one place.

Images travel by *slot* (``image``, ``start_frame``, ``end_frame``, the slash command's option names)
mapped to a URL at the provider; before anything is uploaded, :data:`PENDING_UPLOAD` stands in for a
slot that will be filled, so the provider's rules can be checked first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from storage import Job, JobOrigin, JobRequest
from ulazai.pricing import estimate_credits
from ulazai.requests import AspectRatio, GenerationMode, KlingModel, Quality, VideoSpec

#: The image slots a request may fill, in the order a member gives them.
IMAGE_SLOTS: Final = ("image", "start_frame", "end_frame")
#: Stands in for a slot's URL while the provider's rules are checked, before any upload.
PENDING_UPLOAD: Final = "https://upload.pending.invalid/image"
#: The duration a request gets when the member names none.
DEFAULT_DURATION: Final = 5


@dataclasses.dataclass(frozen=True, slots=True)
class VideoOptions:
    """A request as the member typed it: ``None`` means "not given" (the server's or the model's default)."""

    prompt: str
    mode: GenerationMode
    model: str | None = None
    duration: int | None = None
    quality: str | None = None
    aspect_ratio: str | None = None
    sound: bool | None = None
    multi_shot: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """How a request was made when not from a slash command, and from which job (``None``: no job,
    e.g. an image someone posted)."""

    kind: JobOrigin
    parent_job_id: int | None = None


def spec_of_options(
    options: VideoOptions, images: Mapping[str, str], *, default_model: str, directory_optin: bool
) -> VideoSpec:
    """The spec a member's options stand for; ``images`` maps filled slots to URLs (or :data:`PENDING_UPLOAD`)."""
    return VideoSpec(
        model=KlingModel(options.model or default_model),
        prompt=options.prompt,
        mode=options.mode,
        duration=options.duration if options.duration is not None else DEFAULT_DURATION,
        quality=Quality(options.quality) if options.quality else None,
        aspect_ratio=AspectRatio(options.aspect_ratio) if options.aspect_ratio else None,
        sound=bool(options.sound),
        multi_shot=bool(options.multi_shot),
        directory_optin=directory_optin,
        image_urls=(images["image"],) if "image" in images else (),
        start_frame_url=images.get("start_frame"),
        end_frame_url=images.get("end_frame"),
    )


def with_images(spec: VideoSpec, images: Mapping[str, str]) -> VideoSpec:
    """``spec`` with its image slots filled from ``images`` (the uploads' real URLs)."""
    return dataclasses.replace(
        spec,
        image_urls=(images["image"],) if "image" in images else (),
        start_frame_url=images.get("start_frame"),
        end_frame_url=images.get("end_frame"),
    )


def job_request(spec: VideoSpec, origin: Origin | None = None) -> JobRequest:
    """What is stored for ``spec``: the prompt trimmed, and Kling 3.0's quality made explicit (std when
    not given), so the job's columns say exactly what was sent and what it cost; ``origin``: the job
    it was made from, when it was (Continue, Remix, Animate with Kling)."""
    return JobRequest(
        model=spec.model.value,
        mode=spec.mode.value,
        prompt=spec.prompt.strip(),
        duration=spec.duration,
        quality=(spec.quality or Quality.STD).value if spec.model is KlingModel.V3_0 else None,
        aspect_ratio=spec.aspect_ratio.value if spec.aspect_ratio else None,
        sound=spec.sound,
        multi_shot=spec.multi_shot,
        directory_optin=spec.directory_optin,
        image_urls=spec.image_urls,
        start_frame_url=spec.start_frame_url,
        end_frame_url=spec.end_frame_url,
        parent_job_id=origin.parent_job_id if origin else None,
        origin=origin.kind if origin else None,
    )


def spec_of_job(job: Job) -> VideoSpec:
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


def options_of_job(job: Job) -> VideoOptions:
    """The options that make the same video again (Regenerate)."""
    return VideoOptions(
        prompt=job.prompt,
        mode=GenerationMode(job.mode),
        model=job.model,
        duration=job.duration,
        quality=job.quality,
        aspect_ratio=job.aspect_ratio,
        sound=job.sound,
        multi_shot=job.multi_shot,
    )


def images_of_job(job: Job) -> dict[str, str]:
    """The job's images by slot, already at the provider (Regenerate reuses them, uploading nothing)."""
    images = {"image": job.image_urls[0]} if job.image_urls else {}
    if job.start_frame_url:
        images["start_frame"] = job.start_frame_url
    if job.end_frame_url:
        images["end_frame"] = job.end_frame_url
    return images


def reservation_for(spec: VideoSpec) -> int:
    """The credits held for a request: the undiscounted table price (settled to the provider's figure)."""
    return estimate_credits(spec, include_discount=False)


# -- issue 12: new videos from one already made ------------------------------------------------------

#: The slot a continuation fills with the last frame of the video it continues.
CONTINUE_SLOT: Final = "start_frame"
#: The slot Animate with Kling fills with the posted image.
ANIMATE_SLOT: Final = "image"
#: The one model that starts a video from a frame: every continuation is made with it.
FRAMES_MODEL: Final = KlingModel.V3_0


def continuation_of(job: Job, prompt: str, duration: int | None) -> VideoOptions:
    """The request that carries ``job``'s video on from its last frame (:data:`CONTINUE_SLOT`).

    Always Kling 3.0 image-to-video (the only model with frames, so a Kling 2.6 video continues on
    3.0 too), with the original's quality (Standard for a 2.6 video, which has none) and sound, and
    no aspect ratio: a start frame sets the shape, and the provider refuses both together.
    ``duration``: ``None`` keeps the original's length.
    """
    return VideoOptions(
        prompt=prompt,
        mode=GenerationMode.IMAGE_TO_VIDEO,
        model=FRAMES_MODEL.value,
        duration=job.duration if duration is None else duration,
        quality=job.quality if job.model == FRAMES_MODEL else Quality.STD.value,
        aspect_ratio=None,
        sound=job.sound,
        multi_shot=False,
    )


def changes_model(job: Job) -> bool:
    """Whether continuing ``job`` makes the new video with another model than the original's."""
    return job.model != FRAMES_MODEL


def remix_of(job: Job, prompt: str) -> tuple[VideoOptions, dict[str, str]]:
    """``job`` again with a new prompt: the same model, settings and source images (already at the
    provider, so nothing is uploaded again)."""
    return dataclasses.replace(options_of_job(job), prompt=prompt), images_of_job(job)


def animation_of(prompt: str, duration: int | None) -> VideoOptions:
    """Animate with Kling: an image someone posted (:data:`ANIMATE_SLOT`), on the server's default
    model, with every other setting at its default."""
    return VideoOptions(prompt=prompt, mode=GenerationMode.IMAGE_TO_VIDEO, duration=duration)
