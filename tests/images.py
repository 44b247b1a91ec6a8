"""Synthetic, harmless test images (gradients, shapes, noise) as encoded bytes.

Every helper returns the bytes of one encoded file, built in memory with Pillow and numpy.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

import waakhond.intake  # noqa: F401  (registers the HEIF opener and encoder with Pillow)

Color = tuple[int, int, int]

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF orientation: the stored pixels must be turned 90 degrees to view


def gradient(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> Image.Image:
    """An RGB image: a horizontal gradient towards ``color`` with a white square on it."""
    ramp = np.linspace(0.2, 1.0, width, dtype=np.float32)
    pixels = (ramp[None, :, None] * np.array(color, dtype=np.float32)).astype(np.uint8)
    image = Image.fromarray(np.repeat(pixels, height, axis=0), "RGB")
    ImageDraw.Draw(image).rectangle(
        (width // 4, height // 4, width // 2, height // 2), fill=(255, 255, 255)
    )
    return image


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """An RGB image of random noise (hard to compress, so the file has real content)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def jpeg(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> bytes:
    return encode(gradient(width, height, color), "JPEG", quality=90)


def png(width: int = 64, height: int = 48, color: Color = (200, 60, 30),
        mode: str = "RGB") -> bytes:
    """A PNG in the given Pillow mode (RGB, RGBA, P, L, LA or I;16 for 16-bit grey)."""
    image = gradient(width, height, color)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey, "I;16")
    elif mode != "RGB":
        image = image.convert(mode)
    return encode(image, "PNG")


def gif_animated(frames: int = 30, width: int = 64, height: int = 48) -> bytes:
    """An animated GIF whose frames differ (a square moving across), so none are merged."""
    images = []
    for index in range(frames):
        image = Image.new("RGB", (width, height), (20, 20, 80))
        x = index % (width - 8)
        ImageDraw.Draw(image).rectangle((x, 10, x + 7, 17), fill=(250, 200, 0))
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=40, loop=0, disposal=1)
    return buffer.getvalue()


def webp(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> bytes:
    return encode(gradient(width, height, color), "WEBP", quality=90)


def bmp(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> bytes:
    return encode(gradient(width, height, color), "BMP")


def tiff(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> bytes:
    return encode(gradient(width, height, color), "TIFF")


def heic(width: int = 64, height: int = 48, color: Color = (200, 60, 30)) -> bytes:
    return encode(gradient(width, height, color), "HEIF", quality=90)


def cmyk_jpeg(width: int = 64, height: int = 48) -> bytes:
    return encode(gradient(width, height).convert("CMYK"), "JPEG", quality=90)


def jpeg_rotated_90(width: int = 64, height: int = 48) -> bytes:
    """A JPEG stored as ``width`` x ``height`` with EXIF orientation 6 (view it turned 90)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    return encode(gradient(width, height), "JPEG", quality=90, exif=exif.tobytes())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb).

    The IHDR is written by hand with a valid CRC; the single IDAT holds a few compressed
    rows, so nothing can be decoded without first trusting the absurd header.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of an encoded file, as an interrupted upload leaves it."""
    return data[: int(len(data) * fraction)]
