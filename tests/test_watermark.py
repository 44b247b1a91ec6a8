"""The invisible watermark: round trips, robustness, invisibility and no false positives.

Synthetic images are drawn in memory; the photos are the harmless face photos in
shared/data/faces (shared/data/SOURCES.md). Nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.images import encode, gradient, noise
from waakhond.intake import decode_image
from waakhond.provenance.watermark import (
    MARK_ID_BITS,
    WatermarkReading,
    embed_watermark,
    new_mark_id,
    read_watermark,
)

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
PHOTOS = ("deepface/img1.jpg", "deepface/img12.jpg", "deepface/couple.jpg",
          "fairface/fairface_0001.jpg", "fairface/fairface_0300.jpg")
UNMARKED_PHOTOS = 60
MARK_ID = 0x5A3C_0F1E_7788
MIN_PSNR_DB = 38.0


# --- helpers ---------------------------------------------------------------------------


def photo(name: str, side: int = 1024) -> Image.Image:
    """A face photo as the gateway decodes it, scaled so its longer side is ``side``."""
    image = Image.fromarray(decode_image((FACES / name).read_bytes()).first.rgb)
    scale = side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def shapes(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (40, 110, 170))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    return image


def smooth_texture(width: int, height: int, seed: int = 0) -> Image.Image:
    """Blotches with grain: a noise texture that still has mid tones everywhere."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(40, 216, (8, 8, 3), np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float64)
    grain = rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """Re-encoded and decoded the way the gateway's verify endpoint decodes uploads."""
    return Image.fromarray(decode_image(encode(image, "JPEG", quality=quality)).first.rgb)


def png(image: Image.Image) -> Image.Image:
    return Image.fromarray(decode_image(encode(image, "PNG")).first.rgb)


def scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


def psnr(original: Image.Image, marked: Image.Image) -> float:
    a = np.asarray(original.convert("RGB"), np.float64)
    b = np.asarray(marked, np.float64)
    return float(10 * np.log10(255.0**2 / ((a - b) ** 2).mean()))


def assert_reads(image: Image.Image, mark_id: int = MARK_ID) -> None:
    reading = read_watermark(image)
    assert reading.found, reading
    assert reading.mark_id == mark_id
    assert 0.5 < reading.confidence <= 1.0


@pytest.fixture(scope="module")
def marked_photos() -> list[tuple[Image.Image, Image.Image]]:
    """(original, marked) for a few photos at 1024 px."""
    return [(image, embed_watermark(image, MARK_ID)) for image in map(photo, PHOTOS)]


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    gradient(640, 480),
    gradient(480, 640, color=(30, 160, 90)),
    noise(512, 384, seed=3),
    shapes(800, 600),
    smooth_texture(1024, 768),
], ids=["gradient", "gradient-portrait", "noise", "shapes", "texture"])
def test_synthetic_images_round_trip(image: Image.Image) -> None:
    marked = embed_watermark(image, MARK_ID)
    assert marked.mode == "RGB" and marked.size == image.size
    assert_reads(marked)
    assert_reads(png(marked))
    assert_reads(jpeg(marked, 80))


def test_photos_round_trip_and_stay_invisible(
        marked_photos: list[tuple[Image.Image, Image.Image]]) -> None:
    for original, marked in marked_photos:
        assert_reads(marked)
        assert psnr(original, marked) >= MIN_PSNR_DB


@pytest.mark.parametrize("transform", [
    lambda image: jpeg(image, 80),
    lambda image: jpeg(scaled(image, 0.5), 80),
    lambda image: scaled(image, 0.5),
    lambda image: scaled(image, 2.0),
    png,
], ids=["jpeg-q80", "half-then-jpeg-q80", "half", "double", "png"])
def test_mark_survives(marked_photos: list[tuple[Image.Image, Image.Image]],
                       transform: Callable[[Image.Image], Image.Image]) -> None:
    for _, marked in marked_photos:
        assert_reads(transform(marked))


def test_different_ids_read_back() -> None:
    image = smooth_texture(700, 500, seed=1)
    for mark_id in (1, 2, (1 << MARK_ID_BITS) - 1, 0x8000_0000_0000, new_mark_id()):
        assert_reads(jpeg(embed_watermark(image, mark_id), 80), mark_id)


def test_marking_again_replaces_the_mark() -> None:
    """An edit of one of our images gets a new record; its mark must win."""
    twice = embed_watermark(embed_watermark(photo(PHOTOS[0], 768), MARK_ID), 424242)
    assert_reads(twice, 424242)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK"])
def test_other_modes_become_marked_rgb(mode: str) -> None:
    image = photo(PHOTOS[3], 512)
    if mode == "P":  # a palette made for the picture, as PNG encoders make them
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image = image.convert(mode)
    marked = embed_watermark(image, MARK_ID)
    assert marked.mode == "RGB"
    assert_reads(jpeg(marked, 80))


@pytest.mark.parametrize("size", [(64, 64), (65, 97), (1001, 333), (333, 1001), (2000, 90)])
def test_odd_and_small_sizes(size: tuple[int, int]) -> None:
    marked = embed_watermark(smooth_texture(*size, seed=2), MARK_ID)
    assert marked.size == size
    assert_reads(png(marked))


def test_mark_follows_exif_orientation() -> None:
    """The mark goes on the image as viewed, which is what the intake decoder hands on."""
    stored = photo(PHOTOS[1], 640)
    exif = Image.Exif()
    exif[0x0112] = 6  # view turned 90 degrees clockwise
    with Image.open(io.BytesIO(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))) as opened:
        marked = embed_watermark(opened, MARK_ID)
    assert marked.size == (stored.height, stored.width)
    assert_reads(jpeg(marked, 90))


# --- unmarked images ---------------------------------------------------------------------


def test_unmarked_photos_are_not_found() -> None:
    names = sorted((FACES / "fairface").glob("*.jpg"))[:UNMARKED_PHOTOS // 2]
    names += sorted((FACES / "deepface").glob("*.jpg"))[:UNMARKED_PHOTOS // 2]
    assert len(names) >= 50
    for path in names:
        reading = read_watermark(Image.fromarray(decode_image(path.read_bytes()).first.rgb))
        assert not reading.found and reading.mark_id is None, path.name
        assert reading.confidence < 0.2, path.name


@pytest.mark.parametrize("image", [
    Image.new("RGB", (300, 200), (128, 128, 128)),
    Image.new("RGB", (300, 200), (0, 0, 0)),
    Image.new("RGB", (300, 200), (255, 255, 255)),
    gradient(640, 480),
    noise(400, 300),
], ids=["grey", "black", "white", "gradient", "noise"])
def test_unmarked_synthetic_images_are_not_found(image: Image.Image) -> None:
    assert not read_watermark(image).found


def test_cropping_loses_the_mark_rather_than_misreading_it(
        marked_photos: list[tuple[Image.Image, Image.Image]]) -> None:
    _, marked = marked_photos[0]
    cropped = marked.crop((26, 26, marked.width - 26, marked.height - 26))
    assert not read_watermark(cropped).found


def test_too_small_to_read_is_not_found() -> None:
    reading = read_watermark(Image.new("RGB", (40, 40), (90, 90, 90)))
    assert reading == WatermarkReading(found=False, mark_id=None, confidence=0.0)


# --- interface -------------------------------------------------------------------------


@pytest.mark.parametrize("mark_id", [0, -1, 1 << MARK_ID_BITS])
def test_mark_id_out_of_range_is_refused(mark_id: int) -> None:
    with pytest.raises(ValueError, match="mark_id"):
        embed_watermark(gradient(128, 128), mark_id)


@pytest.mark.parametrize("size", [(63, 200), (200, 63), (16, 16)])
def test_too_small_image_is_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="at least 64x64"):
        embed_watermark(gradient(*size), MARK_ID)


def test_input_image_is_left_unchanged() -> None:
    image = gradient(200, 150)
    before = np.asarray(image).copy()
    embed_watermark(image, MARK_ID)
    assert np.array_equal(np.asarray(image), before)


def test_new_mark_ids_are_48_bit_and_never_zero() -> None:
    ids = {new_mark_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(0 < mark_id < 1 << MARK_ID_BITS for mark_id in ids)


def test_reading_to_dict() -> None:
    reading = read_watermark(embed_watermark(gradient(256, 256), MARK_ID))
    assert reading.to_dict() == {"found": True, "mark_id": MARK_ID,
                                 "confidence": reading.confidence}
