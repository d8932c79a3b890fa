"""The one mapping between a request's shapes: options → spec → job request, and back from a job."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from generation import shapes
from generation.shapes import PENDING_UPLOAD, VideoOptions
from storage import Job, JobState
from ulazai.requests import AspectRatio, GenerationMode, KlingModel, Quality


def test_options_take_the_servers_model_and_the_default_duration() -> None:
    spec = shapes.spec_of_options(
        VideoOptions(prompt=" a fox ", mode=GenerationMode.TEXT_TO_VIDEO),
        {},
        default_model="kling-2.6",
        directory_optin=True,
    )
    assert spec.model is KlingModel.V2_6
    assert spec.duration == shapes.DEFAULT_DURATION
    assert spec.directory_optin
    assert (spec.quality, spec.aspect_ratio, spec.sound, spec.multi_shot) == (None, None, False, False)


def test_image_slots_fill_the_specs_image_fields() -> None:
    options = VideoOptions(prompt="p", mode=GenerationMode.IMAGE_TO_VIDEO, model="kling-3.0")
    spec = shapes.spec_of_options(
        options,
        {"start_frame": PENDING_UPLOAD, "end_frame": PENDING_UPLOAD},
        default_model="kling-2.6",
        directory_optin=False,
    )
    assert (spec.image_urls, spec.start_frame_url, spec.end_frame_url) == ((), PENDING_UPLOAD, PENDING_UPLOAD)
    spec = shapes.with_images(spec, {"start_frame": "https://u/1", "end_frame": "https://u/2"})
    assert (spec.start_frame_url, spec.end_frame_url) == ("https://u/1", "https://u/2")


def test_the_stored_request_trims_the_prompt_and_makes_kling_30_quality_explicit() -> None:
    spec = shapes.spec_of_options(
        VideoOptions(prompt="  a fox  ", mode=GenerationMode.TEXT_TO_VIDEO, model="kling-3.0"),
        {},
        default_model="kling-2.6",
        directory_optin=False,
    )
    request = shapes.job_request(spec)
    assert request.prompt == "a fox"
    assert request.quality == "std"
    on_26 = shapes.job_request(dataclasses.replace(spec, model=KlingModel.V2_6))
    assert on_26.quality is None


@given(
    model=st.sampled_from(list(KlingModel)),
    mode=st.sampled_from(list(GenerationMode)),
    duration=st.integers(3, 15),
    quality=st.sampled_from(list(Quality)),
    aspect=st.none() | st.sampled_from(list(AspectRatio)),
    sound=st.booleans(),
    multi_shot=st.booleans(),
    images=st.dictionaries(st.sampled_from(shapes.IMAGE_SLOTS), st.just("https://u/x"), max_size=3),
)
def test_a_stored_job_maps_back_to_the_spec_and_options_it_was_made_from(
    model: KlingModel,
    mode: GenerationMode,
    duration: int,
    quality: Quality,
    aspect: AspectRatio | None,
    sound: bool,
    multi_shot: bool,
    images: dict[str, str],
) -> None:
    options = VideoOptions(
        prompt="a fox",
        mode=mode,
        model=model.value,
        duration=duration,
        quality=quality.value if model is KlingModel.V3_0 else None,
        aspect_ratio=aspect.value if aspect else None,
        sound=sound,
        multi_shot=multi_shot,
    )
    spec = shapes.spec_of_options(options, images, default_model="kling-3.0", directory_optin=False)
    request = shapes.job_request(spec)
    job = Job(
        guild_id=1,
        user_id=2,
        channel_id=3,
        interaction_id=4,
        state=JobState.QUEUED,
        estimate_credits=10,
        **request.columns(),
    )
    back = shapes.spec_of_job(job)
    assert shapes.job_request(back) == request
    assert shapes.options_of_job(job) == options
    assert shapes.images_of_job(job) == images
