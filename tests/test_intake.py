"""Image intake: type sniffing, limits and decoding. Fast; no models are loaded."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from tests import images
from waakhond.config import IntakeLimits
from waakhond.errors import CorruptImage, EmptyInput, InputError, InputTooLarge, UnsupportedType
from waakhond.intake import decode_image, sniff_type

SUPPORTED = [
    # (encoder, format, MIME type)
    (images.jpeg, "JPEG", "image/jpeg"),
    (images.png, "PNG", "image/png"),
    (images.webp, "WEBP", "image/webp"),
    (images.bmp, "BMP", "image/bmp"),
    (images.tiff, "TIFF", "image/tiff"),
    (images.heic, "HEIF", "image/heic"),
]
SUPPORTED_IDS = [fmt for _, fmt, _ in SUPPORTED]


def expected_rgb(width: int = 64, height: int = 48) -> np.ndarray:
    return np.asarray(images.gradient(width, height), dtype=np.int16)


def grey_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert("L"), dtype=np.int16)


# ---------------------------------------------------------------------------------------
# Supported formats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encode", "fmt", "mime"), SUPPORTED, ids=SUPPORTED_IDS)
def test_supported_format_decodes_to_rgb_array_of_the_right_size(encode, fmt, mime):
    decoded = decode_image(encode(width=64, height=48))

    assert decoded.first.rgb.shape == (48, 64, 3)
    assert decoded.first.rgb.dtype == np.uint8
    assert (decoded.info.width, decoded.info.height) == (64, 48)


@pytest.mark.parametrize(("encode", "fmt", "mime"), SUPPORTED, ids=SUPPORTED_IDS)
def test_supported_format_reports_sniffed_format_and_mime(encode, fmt, mime):
    data = encode()
    info = decode_image(data).info

    assert (info.format, info.mime_type) == (fmt, mime)
    assert info.byte_size == len(data)
    assert (info.frame_count, info.frames_screened) == (1, 1)


@pytest.mark.parametrize(("encode", "fmt", "mime"), SUPPORTED, ids=SUPPORTED_IDS)
def test_supported_format_keeps_the_picture(encode, fmt, mime):
    decoded = decode_image(encode()).first.rgb.astype(np.int16)

    # Lossy codecs move single pixels a little; the picture as a whole must be the same.
    assert np.abs(decoded - expected_rgb()).mean() < 6


def test_static_gif_decodes_as_one_frame():
    info = decode_image(images.gif_animated(frames=1)).info

    assert (info.format, info.mime_type) == ("GIF", "image/gif")
    assert (info.frame_count, info.frames_screened) == (1, 1)


# ---------------------------------------------------------------------------------------
# Type sniffing: the bytes decide, never a name
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encode", "fmt", "mime"), SUPPORTED, ids=SUPPORTED_IDS)
def test_sniff_type_recognises_each_format_from_its_bytes(encode, fmt, mime):
    assert sniff_type(encode()) == (fmt, mime)


def test_sniff_type_needs_only_the_leading_bytes():
    assert sniff_type(images.png()[:16]) == ("PNG", "image/png")


def test_sniff_type_recognises_gif():
    assert sniff_type(images.gif_animated(frames=2)) == ("GIF", "image/gif")


def test_sniff_type_recognises_big_endian_tiff():
    assert sniff_type(b"MM\x00*" + b"\x00" * 16) == ("TIFF", "image/tiff")


# ---------------------------------------------------------------------------------------
# Orientation and colour modes
# ---------------------------------------------------------------------------------------


def test_exif_orientation_6_swaps_width_and_height():
    info = decode_image(images.jpeg_rotated_90(width=64, height=48)).info

    assert (info.width, info.height) == (48, 64)


def test_exif_orientation_6_turns_the_pixels_clockwise():
    rotated = decode_image(images.jpeg_rotated_90()).first.rgb
    stored = decode_image(images.jpeg()).first.rgb  # the same pixels without the EXIF tag

    np.testing.assert_array_equal(rotated, np.rot90(stored, k=-1))


MODES = ["RGBA", "P", "L", "LA", "CMYK", "16-bit grey", "16-bit RGB"]


def encode_in_mode(mode: str) -> bytes:
    if mode == "CMYK":
        return images.cmyk_jpeg()
    if mode == "16-bit grey":
        return images.png_16bit(grey_of(expected_rgb()).astype(np.uint16) * 257)
    if mode == "16-bit RGB":
        return images.png_16bit(expected_rgb().astype(np.uint16) * 257)
    return images.png(mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_colour_mode_becomes_an_rgb_array(mode):
    rgb = decode_image(encode_in_mode(mode)).first.rgb

    assert rgb.shape == (48, 64, 3)
    assert rgb.dtype == np.uint8


@pytest.mark.parametrize("mode", MODES)
def test_colour_mode_conversion_keeps_the_picture(mode):
    rgb = decode_image(encode_in_mode(mode)).first.rgb.astype(np.int16)
    colourless = mode in ("L", "LA", "16-bit grey")
    expected = grey_of(expected_rgb()) if colourless else expected_rgb()
    actual = rgb.mean(axis=2) if colourless else rgb

    assert np.abs(actual - expected).mean() < 8


def test_transparent_pixels_are_not_composited_away():
    # Content hidden behind alpha 0 must still reach the detectors.
    pixels = np.asarray(images.gradient().convert("RGBA")).copy()
    pixels[..., 3] = 0
    data = images.encode(Image.fromarray(pixels, "RGBA"), "PNG")

    rgb = decode_image(data).first.rgb

    np.testing.assert_array_equal(rgb, pixels[..., :3])


# ---------------------------------------------------------------------------------------
# Animated images
# ---------------------------------------------------------------------------------------


def test_animated_gif_reports_its_frame_count():
    info = decode_image(images.gif_animated(frames=30)).info

    assert info.frame_count == 30
    assert info.frames_screened == IntakeLimits().frames_to_screen == 8


def test_animated_gif_screens_an_even_sample_including_first_and_last_frame():
    decoded = decode_image(images.gif_animated(frames=30))
    indices = [frame.index for frame in decoded.frames]

    assert len(indices) == 8
    assert indices[0] == 0
    assert indices[-1] == 29
    assert indices == sorted(set(indices))


def test_animated_gif_frames_are_the_frames_at_their_index():
    decoded = decode_image(images.gif_animated(frames=30))

    # The yellow square moves one pixel right per frame, starting at x = 0.
    for frame in decoded.frames:
        yellow_columns = np.flatnonzero((frame.rgb[:, :, 0] > 200).any(axis=0))
        assert yellow_columns[0] == frame.index


def test_animated_gif_with_few_frames_screens_them_all():
    decoded = decode_image(images.gif_animated(frames=5))

    assert [frame.index for frame in decoded.frames] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------
# Refused inputs: each with the right error type and a message a user can act on
# ---------------------------------------------------------------------------------------


def test_zero_bytes_are_empty_input():
    with pytest.raises(EmptyInput, match="empty"):
        decode_image(b"")


def test_sniff_type_of_zero_bytes_is_empty_input():
    with pytest.raises(EmptyInput):
        sniff_type(b"")


NOT_IMAGES = {
    "plain text": b"Hello, this is a README.\nNothing to see here.\n",
    "HTML": b"<!DOCTYPE html>\n<html><body>not an image</body></html>\n",
    "PDF": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "ZIP": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)),
}


@pytest.mark.parametrize(("looks_like", "data"), NOT_IMAGES.items(), ids=NOT_IMAGES.keys())
def test_non_image_bytes_are_unsupported_and_the_message_says_what_they_look_like(
    looks_like, data
):
    with pytest.raises(UnsupportedType, match=f"(?i)look like .*{looks_like}"):
        decode_image(data)


def test_unknown_binary_bytes_are_unsupported():
    with pytest.raises(UnsupportedType, match="unknown binary"):
        decode_image(bytes([0, 1, 2, 3, 250, 251, 252, 253]) * 8)


def test_mp4_video_is_unsupported_and_the_message_mentions_video():
    mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 64

    with pytest.raises(UnsupportedType, match="video"):
        decode_image(mp4)


def test_truncated_jpeg_is_corrupt():
    data = images.encode(images.noise(256, 256), "JPEG")

    with pytest.raises(CorruptImage, match="JPEG"):
        decode_image(images.truncated(data, 0.5))


def test_truncated_png_is_corrupt():
    data = images.encode(images.noise(256, 256), "PNG")

    with pytest.raises(CorruptImage, match="PNG"):
        decode_image(images.truncated(data, 0.5))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "magic",
    [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"],
    ids=["JPEG", "PNG", "GIF", "TIFF", "WEBP"],
)
def test_garbage_after_a_valid_magic_is_corrupt(magic):
    garbage = random.Random(7).randbytes(1024)

    with pytest.raises(CorruptImage):
        decode_image(magic + garbage)


def test_decompression_bomb_header_is_refused_before_decoding():
    bomb = images.bomb_png(100_000, 100_000)
    assert len(bomb) < 200  # tiny on disk, 30 GB once decoded

    # Decoding it would allocate tens of gigabytes; refusing it from the header is instant.
    with pytest.raises(InputTooLarge, match="decompression bomb"):
        decode_image(bomb)


def test_too_many_pixels_within_the_side_limit_is_refused():
    bomb = images.bomb_png(20_000, 20_000)  # no side too long, but 400 megapixels

    with pytest.raises(InputTooLarge, match="decompression bomb"):
        decode_image(bomb)


def test_too_long_side_is_refused():
    strip = images.bomb_png(40_000, 1)  # only 40,000 pixels, but an absurd strip

    with pytest.raises(InputTooLarge, match="no side may exceed 30,000"):
        decode_image(strip)


def test_too_many_bytes_are_refused_with_the_limit_in_the_message():
    data = images.jpeg()

    with pytest.raises(InputTooLarge, match="the limit is 100 bytes"):
        decode_image(data, IntakeLimits(max_bytes=100))


def test_too_many_bytes_are_refused_before_looking_at_them():
    # Even bytes that are no image at all are refused for their size first.
    with pytest.raises(InputTooLarge):
        decode_image(b"not an image " * 100, IntakeLimits(max_bytes=100))


def test_too_many_frames_are_refused():
    with pytest.raises(InputTooLarge, match="10 frames; the limit is 5"):
        decode_image(images.gif_animated(frames=10), IntakeLimits(max_frames=5))


def test_limits_at_exactly_the_image_size_are_accepted():
    data = images.png(width=100, height=50)
    limits = IntakeLimits(max_bytes=len(data), max_side=100, max_pixels=5_000)

    assert decode_image(data, limits).info.width == 100


def test_gif_frame_that_grows_the_canvas_past_the_pixel_limit_is_refused():
    # Kept small (1000 x 800) so the unfixed code only allocates a few MB.
    data = images.gif_growing_canvas(1000, 800)

    with pytest.raises(InputTooLarge):
        decode_image(data, IntakeLimits(max_pixels=100_000))


def test_tiff_page_larger_than_the_pixel_limit_is_refused():
    data = images.tiff_pages((64, 48), (400, 400))

    with pytest.raises(InputTooLarge):
        decode_image(data, IntakeLimits(max_pixels=100_000))


# ---------------------------------------------------------------------------------------
# Damaged files never escape as anything but an InputError
# ---------------------------------------------------------------------------------------


def test_gif_cut_inside_its_frame_table_is_corrupt():
    with pytest.raises(CorruptImage):
        decode_image(images.gif_cut_after_second_descriptor())


def test_tiff_page_without_dimensions_is_corrupt():
    with pytest.raises(CorruptImage):
        decode_image(images.tiff_second_page_without_width())


def test_heic_with_absurd_coded_size_is_an_input_error():
    with pytest.raises(InputError):
        decode_image(images.heic_with_coded_height(0x9800_0040))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random byte flips, deletions and insertions, as a damaged upload might have."""
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(mutated))
        roll = rng.random()
        if roll < 0.6:
            mutated[position] = rng.randrange(256)
        elif roll < 0.8:
            del mutated[position : position + rng.randint(1, 16)]
        else:
            mutated[position:position] = rng.randbytes(rng.randint(1, 8))
    return bytes(mutated)


@pytest.mark.parametrize("encode", [images.jpeg, images.png], ids=["JPEG", "PNG"])
def test_mutated_image_either_decodes_or_raises_an_input_error(encode):
    original = encode()
    rng = random.Random(20240611)
    unexpected = []
    for attempt in range(200):
        try:
            decoded = decode_image(mutate(original, rng))
        except InputError:
            continue
        except Exception as exc:  # anything else is a bug in intake
            unexpected.append(f"mutation {attempt}: {type(exc).__name__}: {exc}")
            continue
        assert decoded.first.rgb.ndim == 3
        assert decoded.first.rgb.shape[2] == 3

    assert unexpected == []
