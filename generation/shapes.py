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

from storage import Job, JobRequest
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


def job_request(spec: VideoSpec) -> JobRequest:
    """What is stored for ``spec``: the prompt trimmed, and Kling 3.0's quality made explicit (std when
    not given), so the job's columns say exactly what was sent and what it cost."""
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
