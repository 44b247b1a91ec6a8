"""Safe image intake.

The order matters: sniff the real type from the first bytes (never the file name), read
only the header to learn the dimensions, refuse bombs and absurd sizes, and only then decode.
Every failure is a typed ``InputError`` with a message a user can act on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from waakhond.config import IntakeLimits
from waakhond.core import ImageInfo
from waakhond.errors import CorruptImage, EmptyInput, InputTooLarge, UnsupportedType

pillow_heif.register_heif_opener()

# Everything a hostile file can make Pillow or libheif raise while reading it.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError,
                  RuntimeError, MemoryError)

# Leading bytes of each format we accept -> (format name, MIME type).
_MAGIC: list[tuple[bytes, int, str, str]] = [
    (b"\xff\xd8\xff", 0, "JPEG", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "image/png"),
    (b"GIF87a", 0, "GIF", "image/gif"),
    (b"GIF89a", 0, "GIF", "image/gif"),
    (b"BM", 0, "BMP", "image/bmp"),
    (b"II*\x00", 0, "TIFF", "image/tiff"),
    (b"MM\x00*", 0, "TIFF", "image/tiff"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

# What a few common non-image types look like, so the error can say what the file really is.
_NOT_IMAGES: list[tuple[bytes, str]] = [
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<", "HTML or XML text"),
    (b"{", "JSON text"),
    (b"\x7fELF", "an executable"),
]


def sniff_type(data: bytes) -> tuple[str, str]:
    """Return (format, MIME type) judged from the bytes alone, or raise UnsupportedType."""
    if not data:
        raise EmptyInput("the input is empty (0 bytes)")
    for magic, offset, name, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name, mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF", "image/heic"
        if brand in _AVIF_BRANDS:
            return "AVIF", "image/avif"
        if brand in (b"isom", b"mp41", b"mp42", b"qt  "):
            raise UnsupportedType("this is a video (MP4/QuickTime); video is not screened yet")
    raise UnsupportedType(f"not a supported image: the bytes look like {_describe(data)}")


def _describe(data: bytes) -> str:
    stripped = data.lstrip()
    for magic, description in _NOT_IMAGES:
        if stripped.startswith(magic):
            return description
    if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:512]):
        return "plain text"
    return "an unknown binary format"


@dataclass
class Frame:
    """One decoded frame as an RGB array, with cached smaller copies for the detectors."""

    rgb: np.ndarray
    index: int
    _scaled: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def scaled(self, max_side: int) -> np.ndarray:
        """The frame shrunk (never enlarged) so its longer side is at most ``max_side``."""
        if max(self.rgb.shape[:2]) <= max_side:
            return self.rgb
        if max_side not in self._scaled:
            height, width = self.rgb.shape[:2]
            factor = max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            # OpenCV's area filter: anti-aliased like Pillow's, at a third of the cost.
            self._scaled[max_side] = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA)
        return self._scaled[max_side]


@dataclass
class DecodedImage:
    """The input as the detectors see it: the original bytes and the frames to screen."""

    data: bytes
    info: ImageInfo
    frames: list[Frame]

    @property
    def first(self) -> Frame:
        return self.frames[0]


# Frames after the first are only needed by detectors that work at low resolution.
_LATER_FRAME_MAX_SIDE = 1024


def decode_image(data: bytes, limits: IntakeLimits | None = None) -> DecodedImage:
    """Check and decode image bytes; raise an InputError subclass for anything unsafe."""
    limits = limits or IntakeLimits()
    if len(data) > limits.max_bytes:
        raise InputTooLarge(
            f"the input is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    fmt, mime = sniff_type(data)
    try:
        # Pillow's own bomb guard (about 179 MP) stays on as a second line behind ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(
            f"the image claims too many pixels (decompression bomb protection): {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage(f"the {fmt} header is damaged and cannot be read") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} data cannot be read: {exc}") from exc
    with image:
        _check_dimensions(image, limits)
        frame_count = _frame_count(image, fmt, limits)
        indices = _frames_to_screen(frame_count, limits.frames_to_screen)
        frames = [_decode_frame(image, i, fmt, limits) for i in indices]
    first = frames[0].rgb
    info = ImageInfo(
        format=fmt,
        mime_type=mime,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        frame_count=frame_count,
        frames_screened=len(frames),
        byte_size=len(data),
    )
    return DecodedImage(data=data, info=info, frames=frames)


def _check_dimensions(image: Image.Image, limits: IntakeLimits) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the header claims an empty image ({width} x {height})")
    if max(width, height) > limits.max_side:
        raise InputTooLarge(
            f"the image is {width} x {height}; no side may exceed {limits.max_side:,} pixels"
        )
    if width * height > limits.max_pixels:
        raise InputTooLarge(
            f"the image is {width} x {height} = {width * height:,} pixels; "
            f"the limit is {limits.max_pixels:,} (decompression bomb protection)"
        )


def _frame_count(image: Image.Image, fmt: str, limits: IntakeLimits) -> int:
    try:
        count = int(getattr(image, "n_frames", 1))
    except _DECODE_ERRORS as exc:  # counting GIF frames reads the whole file
        raise CorruptImage(f"the {fmt} frames cannot be read: {exc}") from exc
    if count > limits.max_frames:
        raise InputTooLarge(f"the image has {count:,} frames; the limit is {limits.max_frames:,}")
    return count


def _frames_to_screen(frame_count: int, wanted: int) -> list[int]:
    """An even spread of frame indices that always includes the first and the last."""
    if frame_count <= wanted:
        return list(range(frame_count))
    step = (frame_count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _decode_frame(image: Image.Image, index: int, fmt: str, limits: IntakeLimits) -> Frame:
    try:
        image.seek(index)
        # A later GIF frame can grow the canvas and a later TIFF page can have any size:
        # every frame is checked before it is decoded, not just the first header.
        _check_dimensions(image, limits)
        # Orientation first, so faces are upright for the detectors.
        upright = ImageOps.exif_transpose(image) if index == 0 else image
        rgb = _to_rgb(upright)
        if index > 0:
            rgb.thumbnail((_LATER_FRAME_MAX_SIDE, _LATER_FRAME_MAX_SIDE))
        array = np.asarray(rgb)
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} image is truncated or damaged: {exc}") from exc
    if array.ndim != 3 or array.shape[2] != 3:
        raise CorruptImage(f"the {fmt} image decoded to an unexpected shape {array.shape}")
    return Frame(rgb=np.ascontiguousarray(array), index=index)


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. Alpha is dropped, not composited: content hidden behind transparency is
    still screened. 16-bit and float greyscale are rescaled, because Pillow's convert clips
    them to white and would hide the picture from the detectors."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        scaled = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    return image.convert("RGB")
