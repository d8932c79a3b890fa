"""The price before anything is spent: when a request is quoted, what a quote keeps, who may decide it.

A request is *quoted* - answered with its settings, its price and the member's balance after, under
Confirm and Cancel - before anything is uploaded, held, queued or sent for review, when:

* its estimate is strictly above the server's ``confirm_above_credits`` (0: never). The figure compared
  is the undiscounted table price the bot reserves (:func:`generation.shapes.reservation_for`), the
  one the member is charged at most;
* or, whatever the threshold, the server's Prompt Directory discount is on: publishing a member's
  prompt and video needs that member's click.

Confirm runs the whole request again (the balance may have changed) with the quote's terms agreed:
it is quoted again only if the terms got worse meanwhile (a dearer estimate, or the directory
discount turned on after the member saw a quote without it). A quote is open for
:data:`QUOTE_LIFETIME`, and only the member who asked may decide it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Self

from generation.shapes import Origin, VideoOptions
from storage import GuildSettings, JobOrigin, Quote, QuoteState
from ulazai.requests import GenerationMode

#: How long a quote waits for the member (the interaction's token, which edits it, lives 15 minutes).
QUOTE_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PendingImage:
    """An attachment not read yet: Discord's link to it, and the size Discord declared.

    Discord's attachment links stay valid for hours, far longer than a quote is open, so Confirm
    reads the image then, and nothing is downloaded or uploaded for a quote that is never confirmed.
    """

    url: str
    size: int
    filename: str
    #: A continuation's start frame: made at Confirm from the last frame of the first of these videos
    #: that can be read (``url`` is then the first of them).
    frame_of: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuotedRequest:
    """What Confirm needs to make the request again: the member's options, attachments not read yet
    (by slot), images already at the provider (Regenerate's), and whether the member was told their
    prompt would be published."""

    options: VideoOptions
    images: Mapping[str, PendingImage]
    uploaded: Mapping[str, str]
    directory_optin: bool
    #: Continue, Remix or Animate: what the job is made from; receipt notes; the message the card answers.
    origin: Origin | None = None
    notes: tuple[str, ...] = ()
    reply_to: tuple[int, int] | None = None  # (channel id, message id)

    def payload(self) -> dict[str, Any]:
        """The quote's stored ``request`` (plain JSON)."""
        return {
            "options": dataclasses.asdict(self.options) | {"mode": self.options.mode.value},
            "images": {slot: dataclasses.asdict(image) for slot, image in self.images.items()},
            "uploaded": dict(self.uploaded),
            "directory_optin": self.directory_optin,
            "origin": None
            if self.origin is None
            else {"kind": self.origin.kind.value, "parent_job_id": self.origin.parent_job_id},
            "notes": list(self.notes),
            "reply_to": None if self.reply_to is None else list(self.reply_to),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        options = dict(payload["options"])
        return cls(
            options=VideoOptions(**(options | {"mode": GenerationMode(options["mode"])})),
            images={
                slot: PendingImage(**(image | {"frame_of": tuple(image.get("frame_of", ()))}))
                for slot, image in payload["images"].items()
            },
            uploaded=dict(payload["uploaded"]),
            directory_optin=bool(payload["directory_optin"]),
            origin=None
            if not (origin := payload.get("origin"))
            else Origin(JobOrigin(origin["kind"]), origin["parent_job_id"]),
            notes=tuple(payload.get("notes", ())),
            reply_to=None if not (reply := payload.get("reply_to")) else (int(reply[0]), int(reply[1])),
        )


@dataclass(frozen=True, slots=True)
class Terms:
    """What the member agreed to by pressing Confirm: the price shown, and whether it said their
    prompt and video would be published."""

    estimate: int
    directory_optin: bool

    @classmethod
    def of(cls, quote: Quote) -> Self:
        """The terms of a quote as it was when confirmed (its request is cleared afterwards)."""
        return cls(quote.estimate_credits, QuotedRequest.from_payload(quote.request).directory_optin)


def needs_quote(estimate: int, settings: GuildSettings, *, agreed: Terms | None = None) -> bool:
    """Whether a request estimated at ``estimate`` must be quoted first (see the module docstring);
    ``agreed``: the terms the member already confirmed for this very request."""
    if agreed is not None:
        return estimate > agreed.estimate or (settings.directory_discount and not agreed.directory_optin)
    if settings.directory_discount:
        return True
    threshold = settings.confirm_above_credits
    return threshold > 0 and estimate > threshold


class Press(StrEnum):
    """What a press of Confirm or Cancel meets."""

    GONE = "gone"  # no such quote here (erased, or a custom_id from elsewhere)
    NOT_YOURS = "not_yours"  # another member's quote
    DECIDED = "decided"  # confirmed, cancelled or expired already
    EXPIRED = "expired"  # still open, but its time is up: it expires now
    OPEN = "open"  # the member may decide it


def on_press(quote: Quote | None, *, guild_id: int | None, user_id: int, now: datetime) -> Press:
    if quote is None or quote.guild_id != guild_id:
        return Press.GONE
    if quote.user_id != user_id:
        return Press.NOT_YOURS
    if quote.state is not QuoteState.OPEN:
        return Press.DECIDED
    if now >= quote.expires_at:
        return Press.EXPIRED
    return Press.OPEN
