"""Image checks by magic bytes and size, before anything reaches the provider."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulazai.errors import InvalidRequestError
from ulazai.images import (
    MAX_IMAGE_BYTES,
    ImageKind,
    check_declared_size,
    check_image,
    sniff_image_kind,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
GIF = b"GIF89a\x01\x00\x01\x00" + b"\x00" * 32


def test_limit_is_decimal_ten_megabytes() -> None:
    assert MAX_IMAGE_BYTES == 10_000_000


@pytest.mark.parametrize(
    ("kind", "mime", "extension"),
    [
        (ImageKind.JPEG, "image/jpeg", "jpg"),
        (ImageKind.PNG, "image/png", "png"),
        (ImageKind.WEBP, "image/webp", "webp"),
    ],
)
def test_kind_properties(kind: ImageKind, mime: str, extension: str) -> None:
    assert kind.mime_type == mime
    assert kind.extension == extension


@pytest.mark.parametrize(
    ("data", "kind"), [(JPEG, ImageKind.JPEG), (PNG, ImageKind.PNG), (WEBP, ImageKind.WEBP)]
)
def test_each_magic(data: bytes, kind: ImageKind) -> None:
    assert sniff_image_kind(data) is kind
    assert check_image(data) is kind


def test_minimal_magics() -> None:
    assert sniff_image_kind(b"\xff\xd8\xff") is ImageKind.JPEG
    assert sniff_image_kind(b"\x89PNG\r\n\x1a\n") is ImageKind.PNG
    assert sniff_image_kind(b"RIFF\x00\x00\x00\x00WEBP") is ImageKind.WEBP


def test_png_named_jpg_is_still_png() -> None:
    """Only the bytes count: the name and content type a client declares are not consulted at all."""
    attachment = {"filename": "holiday.jpg", "content_type": "image/jpeg", "data": PNG}
    kind = check_image(attachment["data"])  # type: ignore[arg-type]
    assert kind is ImageKind.PNG
    assert kind.mime_type == "image/png"
    assert kind.extension == "png"


@pytest.mark.parametrize(
    "data",
    [
        GIF,
        b"hello, this is text and not an image",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7",
        b"BM" + b"\x00" * 40,  # BMP
        b"\x00\x00\x00\x18ftypheic",  # HEIC
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF but audio
        b"\xff\xd8",  # truncated JPEG magic
        b"\x89PNG\r\n\x1a",  # truncated PNG magic
        b"RIFF\x00\x00\x00\x00WEB",  # truncated WebP magic
        b"RIFF",
        b"\x00",
    ],
)
def test_not_an_accepted_image(data: bytes) -> None:
    assert sniff_image_kind(data) is None
    with pytest.raises(InvalidRequestError) as info:
        check_image(data, field="start_frame")
    assert info.value.field == "start_frame"
    assert info.value.message.startswith("That file is not a JPEG, PNG or WebP image;")


def test_empty_is_refused() -> None:
    assert sniff_image_kind(b"") is None
    with pytest.raises(InvalidRequestError) as info:
        check_image(b"")
    assert info.value.field == "image"
    assert "empty" in info.value.message


def test_exactly_the_limit_is_accepted() -> None:
    data = PNG + b"\x00" * (MAX_IMAGE_BYTES - len(PNG))
    assert len(data) == 10_000_000
    assert check_image(data) is ImageKind.PNG


def test_one_byte_over_the_limit_is_refused() -> None:
    data = JPEG + b"\x00" * (MAX_IMAGE_BYTES + 1 - len(JPEG))
    assert len(data) == 10_000_001
    with pytest.raises(InvalidRequestError) as info:
        check_image(data, field="end_frame")
    assert info.value.field == "end_frame"
    assert "10.01 MB" in info.value.message
    assert "10 MB" in info.value.message


def test_too_large_is_refused_even_when_not_an_image() -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_image(b"\x00" * (MAX_IMAGE_BYTES + 1))
    assert "MB" in info.value.message


@pytest.mark.parametrize("size", [0, 1, 5_000_000, 10_000_000])
def test_declared_size_within_the_limit(size: int) -> None:
    check_declared_size(size)


@pytest.mark.parametrize(
    ("size", "shown"), [(10_000_001, "10.01 MB"), (10_485_760, "10.49 MB"), (25_000_000, "25.00 MB")]
)
def test_declared_size_over_the_limit(size: int, shown: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_declared_size(size, field="start_frame")
    error = info.value
    assert error.field == "start_frame"
    assert shown in error.message
    assert "the limit is 10 MB" in error.message
    assert error.message.startswith("That image is ")
    assert error.message.endswith(".")


def test_declared_size_default_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_declared_size(MAX_IMAGE_BYTES + 1)
    assert info.value.field == "image"


@given(st.binary(max_size=64))
def test_sniff_agrees_with_check(data: bytes) -> None:
    kind = sniff_image_kind(data)
    if kind is None:
        with pytest.raises(InvalidRequestError):
            check_image(data)
    else:
        assert check_image(data) is kind


@given(st.sampled_from([JPEG, PNG, WEBP]), st.binary(max_size=256))
def test_trailing_bytes_do_not_change_the_kind(head: bytes, tail: bytes) -> None:
    assert sniff_image_kind(head + tail) is sniff_image_kind(head)


@given(st.integers(min_value=MAX_IMAGE_BYTES + 1, max_value=10**12))
def test_any_declared_size_over_the_limit_never_reads_as_within_it(size: int) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_declared_size(size)
    shown = float(info.value.message.removeprefix("That image is ").split(" MB")[0])
    assert shown > 10
