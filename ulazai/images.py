"""Checks on images a member attaches, before anything is uploaded to the provider.

The provider's upload route takes JPEG, PNG or WebP, "max 10MB". We check both here so a member hears
what is wrong at once, instead of after a download, an upload and a provider 400:

* The kind is decided by the file's magic bytes only. A file name or a declared content type is
  whatever the member's client said; a PNG renamed ``.jpg`` is still a PNG, and a GIF renamed
  ``.png`` is still refused.
* "10MB" is read as 10,000,000 bytes (decimal megabytes), the stricter of the two readings, so we
  never send a file the provider might refuse as too large; a file between 10,000,001 and 10,485,760
  bytes is refused here even though the provider might have taken it.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

from ulazai.errors import InvalidRequestError

__all__ = ["MAX_IMAGE_BYTES", "ImageKind", "check_declared_size", "check_image", "sniff_image_kind"]

#: The provider's "max 10MB", read as decimal megabytes (the stricter reading).
MAX_IMAGE_BYTES: Final = 10_000_000

_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"


class ImageKind(StrEnum):
    """The image formats the provider's upload route accepts."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"

    @property
    def mime_type(self) -> str:
        """The content type to upload with (the provider sees the real kind, not the member's)."""
        return f"image/{self.value}"

    @property
    def extension(self) -> str:
        """The file extension to upload with, without the dot."""
        return "jpg" if self is ImageKind.JPEG else self.value


def sniff_image_kind(data: bytes) -> ImageKind | None:
    """The kind of image ``data`` holds, by its magic bytes alone, or ``None`` for anything else."""
    if data.startswith(_JPEG_MAGIC):
        return ImageKind.JPEG
    if data.startswith(_PNG_MAGIC):
        return ImageKind.PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageKind.WEBP
    return None


def _megabytes(size: int) -> str:
    """Rounded *up* to 0.01 MB, so a file just over the limit never reads as "10.00 MB"."""
    return f"{math.ceil(size / 10_000) / 100:.2f} MB"


def _too_large(size: int, field: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"That image is {_megabytes(size)} and the limit is {MAX_IMAGE_BYTES // 1_000_000} MB; "
        "choose a smaller or more compressed file.",
        field=field,
    )


def check_declared_size(size: int, *, field: str = "image") -> None:
    """Refuse an attachment whose declared size is over the limit, before downloading it.

    Discord tells us an attachment's size up front; checking it first saves a pointless download.
    The downloaded bytes are still checked by :func:`check_image`, since a declared size is a claim.
    """
    if size > MAX_IMAGE_BYTES:
        raise _too_large(size, field)


def check_image(data: bytes, *, field: str = "image") -> ImageKind:
    """The kind of a downloaded image, or a member-facing refusal.

    Refuses empty data, data over :data:`MAX_IMAGE_BYTES`, and anything that is not JPEG, PNG or WebP
    by its magic bytes, whatever its name or declared type said. ``field`` is the slash-command
    option the image came from (``image``, ``start_frame`` or ``end_frame``).
    """
    if not data:
        raise InvalidRequestError("That file is empty; attach a JPEG, PNG or WebP image.", field=field)
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(len(data), field)
    kind = sniff_image_kind(data)
    if kind is None:
        raise InvalidRequestError(
            "That file is not a JPEG, PNG or WebP image; attach one of those (a renamed file does not count).",
            field=field,
        )
    return kind
