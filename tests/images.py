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
    """A PNG in the given Pillow mode (RGB, RGBA, P, L, LA, ...)."""
    image = gradient(width, height, color)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode != "RGB":
        image = image.convert(mode)
    return encode(image, "PNG")


def png_16bit(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand from a uint16 array: (h, w) is grey, (h, w, 3) is RGB."""
    height, width = pixels.shape[:2]
    color_type = 2 if pixels.ndim == 3 else 0
    rows = pixels.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


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


def _gif_descriptor_offsets(data: bytes) -> list[int]:
    """Where each frame's image descriptor (0x2C) starts, found by walking the GIF blocks."""

    def skip_sub_blocks(pos: int) -> int:
        while data[pos]:
            pos += data[pos] + 1
        return pos + 1

    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    offsets = []
    while data[pos] != 0x3B:  # trailer
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif data[pos] == 0x2C:  # image descriptor, optional local colour table, LZW data
            offsets.append(pos)
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)
        else:
            raise ValueError(f"unexpected GIF block 0x{data[pos]:02x} at {pos}")
    return offsets


def gif_growing_canvas(width: int, height: int) -> bytes:
    """A 2-frame GIF with a 16 x 16 screen whose second frame is placed so far right and down
    that the canvas grows to ``width`` x ``height`` when that frame is decoded."""
    data = bytearray(gif_animated(frames=2, width=16, height=16))
    second = _gif_descriptor_offsets(bytes(data))[1]
    frame_width, frame_height = struct.unpack("<HH", data[second + 5 : second + 9])
    data[second + 1 : second + 5] = struct.pack("<HH", width - frame_width, height - frame_height)
    return bytes(data)


def gif_cut_after_second_descriptor() -> bytes:
    """An animated GIF that ends right after the second frame's descriptor."""
    data = gif_animated(frames=3)
    second = _gif_descriptor_offsets(data)[1]
    return data[: second + 10]


def tiff_pages(*sizes: tuple[int, int]) -> bytes:
    """A multi-page TIFF with one page of each (width, height)."""
    pages = [gradient(w, h) for w, h in sizes]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def tiff_second_page_without_width() -> bytes:
    """A 2-page TIFF whose second page has no ImageWidth tag (its tag id is overwritten)."""
    data = bytearray(tiff_pages((64, 48), (64, 48)))
    assert data[:4] == b"II*\x00"
    first_ifd = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[first_ifd : first_ifd + 2])[0]
    second_ifd = struct.unpack("<I", data[first_ifd + 2 + 12 * entries :][:4])[0]
    entries = struct.unpack("<H", data[second_ifd : second_ifd + 2])[0]
    for entry in range(second_ifd + 2, second_ifd + 2 + 12 * entries, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 256:  # ImageWidth
            data[entry : entry + 2] = struct.pack("<H", 65000)  # a private, unknown tag
            return bytes(data)
    raise AssertionError("no ImageWidth tag in the second TIFF page")


def heic_with_coded_height(height: int) -> bytes:
    """A HEIC whose 'ispe' box (the coded size) claims ``height`` rows; the clean-aperture
    box still crops it to 64 x 48, so the size Pillow reports looks harmless."""
    data = bytearray(heic(64, 48))
    ispe = data.index(b"ispe")
    data[ispe + 12 : ispe + 16] = struct.pack(">I", height)
    return bytes(data)
