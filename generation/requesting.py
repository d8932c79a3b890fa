"""The steps of a request that need the provider's rules or the database, in the order they run.

The cog's flow (``cogs.requesting``) is: acknowledge; :func:`draft` (the provider's rules, before any
download or upload); the checks of :mod:`generation.checks`; read and upload the images; :func:`finalise`
(the real URLs through the same rules); :func:`create_job` (the reservation, atomically); then the cards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from generation.refusals import AlreadyReceived, BudgetSpent, NotEnoughCredits, TooManyJobs
from generation.shapes import (
    PENDING_UPLOAD,
    Origin,
    VideoOptions,
    job_request,
    spec_of_options,
    with_images,
)
from storage import (
    BudgetExceeded,
    DuplicateInteraction,
    GuildSettings,
    InsufficientCredits,
    Job,
    Storage,
    TooManyActiveJobs,
)
from storage.periods import next_period_start
from ulazai.requests import VideoSpec, build_request


def draft(
    options: VideoOptions, settings: GuildSettings, *, slots: Iterable[str], uploaded: Mapping[str, str]
) -> VideoSpec:
    """The spec of a request whose images in ``slots`` are still to be uploaded (and ``uploaded`` already
    are), checked against the provider's rules; raises :class:`~ulazai.errors.InvalidRequestError`."""
    images = {slot: PENDING_UPLOAD for slot in slots} | dict(uploaded)
    spec = spec_of_options(
        options, images, default_model=settings.default_model, directory_optin=settings.directory_discount
    )
    build_request(spec)
    return spec


def finalise(spec: VideoSpec, urls: Mapping[str, str]) -> VideoSpec:
    """``spec`` with the uploads' real URLs, which must obey the same rules as the stand-ins did."""
    spec = with_images(spec, urls)
    build_request(spec)
    return spec


async def create_job(
    storage: Storage,
    spec: VideoSpec,
    *,
    interaction_id: int,
    guild_id: int,
    user_id: int,
    channel_id: int,
    estimate: int,
    role_ids: Iterable[int],
    review: bool,
    settings: GuildSettings,
    origin: Origin | None = None,
) -> tuple[Job, int]:
    """Reserve and create the job in one transaction; returns it and what the member can still spend
    (for the receipt). Storage's refusals become the same :class:`~generation.refusals.Refusal`
    types as the early checks; a refusal for credits names when the member's allowance refills (from
    the server's ``settings``, so nothing else is read for it). ``origin``: the job it was made from."""
    try:
        return await storage.create_job_with_balance(
            interaction_id=interaction_id,
            guild_id=guild_id,
            user_id=user_id,
            channel_id=channel_id,
            request=job_request(spec, origin),
            estimate=estimate,
            role_ids=role_ids,
            review=review,
        )
    except TooManyActiveJobs as error:
        raise TooManyJobs(error.active, error.limit) from None
    except InsufficientCredits as error:
        next_refill = next_period_start(settings.allowance_period, storage.now())
        raise NotEnoughCredits(error.available, error.needed, next_refill) from None
    except BudgetExceeded as error:
        raise BudgetSpent(error.spent, error.budget, error.resets_at) from None
    except DuplicateInteraction:
        raise AlreadyReceived from None
