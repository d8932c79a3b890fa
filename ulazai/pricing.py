"""Credit estimates from the provider's published price tables.

This is an *estimate*, used to show a member the price before a video is made and to reserve credits.
The truth is the provider's ``credits_used`` in its generate answer: the bot reserves the estimate,
then settles to what the provider actually took. The two can differ: the Kling 2.6 page shows 55
credits for a 5 s clip while its Prompt Directory opt-in defaults to true, which leaves open whether
55 already includes the -10 discount (see ``/work/shared/provider-docs/README.md``).

The tables, as published:

* Kling 3.0 charges per second: std 20, std with sound 30, pro 27, pro with sound 40
  (no quality means std). The docs' example, 8 s pro with sound and opted in, is 8 × 40 − 10 = 310.
* Kling 2.6 charges per clip: 55 for 5 s, 110 for 10 s; sound doubles it (110 and 220).
* Opting in to the Prompt Directory takes 10 credits off either model.

Pure functions, no I/O, so the price a member is shown is the price the ledger reserves.
"""

from __future__ import annotations

from typing import Final

from ulazai.errors import InvalidRequestError
from ulazai.requests import KlingModel, Quality, VideoSpec, _check_duration

__all__ = ["DIRECTORY_DISCOUNT", "estimate_credits"]

#: Credits the provider takes off when the prompt is shared to its public Prompt Directory.
DIRECTORY_DISCOUNT: Final = 10

#: Kling 3.0, credits per second, by (quality, sound).
_KLING30_PER_SECOND: Final[dict[tuple[Quality, bool], int]] = {
    (Quality.STD, False): 20,
    (Quality.STD, True): 30,
    (Quality.PRO, False): 27,
    (Quality.PRO, True): 40,
}

#: Kling 2.6, credits per silent clip, by duration in seconds; sound doubles it.
_KLING26_PER_CLIP: Final[dict[int, int]] = {5: 55, 10: 110}


def _kling30_quality(quality: object) -> Quality:
    if quality is None:
        return Quality.STD
    if isinstance(quality, str) and quality in {q.value for q in Quality}:
        return Quality(quality)
    raise InvalidRequestError(
        f"Quality must be std or pro; {quality!r} is not one of them.",
        field="quality",
    )


def estimate_credits(spec: VideoSpec, *, include_discount: bool = True) -> int:
    """The table price of ``spec`` in credits.

    With ``include_discount`` (the default) the Prompt Directory discount is taken off when the spec
    opts in; pass ``False`` for the undiscounted price the bot reserves before the provider answers.
    Raises :class:`~ulazai.errors.InvalidRequestError` for a duration the model does not offer, with
    the same message :func:`~ulazai.requests.build_request` gives.
    """
    if not (isinstance(spec.model, str) and spec.model in {m.value for m in KlingModel}):
        raise InvalidRequestError(
            f"Model {spec.model!r} is not one this bot offers; choose Kling 3.0 or Kling 2.6.", field="model"
        )
    model = KlingModel(spec.model)
    seconds = _check_duration(model, spec.duration)
    sound = bool(spec.sound)
    if model is KlingModel.V3_0:
        price = seconds * _KLING30_PER_SECOND[(_kling30_quality(spec.quality), sound)]
    else:
        price = _KLING26_PER_CLIP[seconds] * (2 if sound else 1)
    if spec.directory_optin and include_discount:
        price -= DIRECTORY_DISCOUNT
    return price
