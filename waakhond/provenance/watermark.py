"""An invisible watermark carrying a 48-bit mark id in the luminance of an image.

Every image the gateway lets through carries it (EU AI Act Art. 50), so an image can later be
shown to be synthetic and traced to its generation record even when its C2PA manifest was
stripped.

Why our own code and not the ``invisible-watermark`` package: it imports torch at load time
(a huge dependency for the gateway) and its dwtDctSvd method takes about 290 ms to encode a
1024 px image, more than our whole per-image gateway budget. This module needs only numpy
and OpenCV and embeds a 1024 px image in about 10 ms.

Method: dithered quantisation index modulation (QIM) of local mean luminance.

* Luminance Y (BT.601, the Y that JPEG keeps at full resolution) is area-averaged onto a
  fixed GRID x GRID lattice of cells, whatever the image size or aspect ratio. The reader
  does the same, so the mark does not depend on scale: resizing changes how many pixels a
  cell holds, not its mean.
* Each cell mean carries one payload bit: it is moved to the nearest point of one of two
  interleaved lattices (spacing STEP), offset per cell by a pseudo-random dither so that
  flat or synthetic images do not decode to a fixed word.
* The payload is 64 bits (48-bit id + 16-bit keyed check); each bit is spread over
  GRID**2 / 64 cells scattered by a fixed permutation and read back by a soft majority vote.
* Only the change (the residual) is computed on the grid. It is upsampled bilinearly (smooth,
  no block edges) and added equally to R, G and B, which moves Y and leaves the chroma as
  it was. The residual is solved for the blur that upsampling causes, then corrected once
  against what the reader really measures (rounding, clipping at 0 and 255).

Why not QIM of the largest singular value of 4 x 4 DCT blocks (the dwtDctSvd family): the
orthonormal DCT leaves singular values unchanged, so it adds nothing; for the smooth blocks
of a downscaled photo the largest singular value is about 4 x the block mean, so it carries
the same signal as the mean; the SVD of 4096 blocks alone takes about 20 ms here; and in
sparse dark blocks the change along the first singular vectors lands on single pixels as
visible dots, where a change of the mean spreads evenly.

What the mark survives: JPEG re-encoding (quality 50 and up), resizing (0.25x to 2x and
more), PNG, mild noise. What it does not survive: cropping, rotation, flips, and global
brightness or contrast changes (the grid or the lattice moves); those would need a
synchronisation template, which this mark does not carry. A lost mark reads as not found,
never as another id. Below about 128 px a side only lossless copies read back reliably.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

MARK_ID_BITS = 48
CHECK_BITS = 16
PAYLOAD_BITS = MARK_ID_BITS + CHECK_BITS
# 64 x 64 cells = 16 x 16 px at 1024 px: coarse enough to live through JPEG quality 50 and a
# halving, fine enough for 64 repetitions of each of the 64 payload bits.
GRID = 64
CELLS = GRID * GRID
# Lattice spacing in grey levels of a cell mean. The change per cell is at most STEP / 2
# (rms STEP / sqrt(12)), which sets the PSNR; decoding fails once noise reaches STEP / 4.
STEP = 6.0
# Embedding passes: the first solves for the blur of upsampling exactly, the second measures
# what the reader will see (after rounding and clipping at 0 and 255 per channel) and adds
# the shortfall; a third gains almost nothing.
PASSES = 2
# Near-singular blur (scale factors just above 1 average neighbouring cells almost equally)
# would make an exact inverse push some cells by tens of grey levels; this ridge damping
# trades a little accuracy, which the second pass wins back, for a bounded residual.
UNBLUR_DAMPING = 0.1
# No cell is moved by more than this, so a target that clipping makes unreachable (pure
# black, white or a saturated colour) cannot grow a visible blotch while the passes push.
MAX_CHANGE = STEP
MIN_SIDE = GRID  # below one pixel per cell the mark cannot be carried
# A valid check alone leaves a 2**-16 chance per unmarked image; unmarked images also vote
# weakly (mean |margin| about 0.07), so a confidence floor removes nearly all of that chance.
MIN_CONFIDENCE = 0.2
_CHECK_KEY = b"waakhond watermark v1"
_LAYOUT_SEED = 0x57A4_6B0D  # fixed: the reader must rebuild the same layout


@dataclass(frozen=True)
class WatermarkReading:
    found: bool  # a mark with a valid check was read
    mark_id: int | None  # the 48-bit id when found
    confidence: float  # 0..1: mean |vote margin| over the payload bits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Layout:
    bit_of_cell: np.ndarray  # (GRID, GRID) the payload bit each cell carries
    dither: np.ndarray  # (GRID, GRID) lattice offset of each cell, in [0, STEP)


def _make_layout() -> _Layout:
    rng = np.random.default_rng(_LAYOUT_SEED)
    # every bit gets exactly CELLS / PAYLOAD_BITS cells, scattered over the whole image so a
    # dark or clipped region costs each bit a few votes instead of some bits all of theirs
    bit_of_cell = rng.permutation(np.arange(CELLS) % PAYLOAD_BITS)
    dither = rng.uniform(0.0, STEP, CELLS)
    layout = _Layout(bit_of_cell.reshape(GRID, GRID), dither.reshape(GRID, GRID))
    for array in (layout.bit_of_cell, layout.dither):
        array.flags.writeable = False
    return layout


_LAYOUT = _make_layout()


def new_mark_id() -> int:
    """A random 48-bit mark id, never 0."""
    while True:
        mark_id = secrets.randbits(MARK_ID_BITS)
        if mark_id:
            return mark_id


def embed_watermark(image: Image.Image, mark_id: int) -> Image.Image:
    """A new RGB image carrying ``mark_id`` invisibly."""
    mark_id = operator.index(mark_id)  # numpy and database integers; a float is a TypeError
    if not 0 < mark_id < 1 << MARK_ID_BITS:
        raise ValueError(f"mark_id must be in 1..2**{MARK_ID_BITS} - 1, got {mark_id}")
    rgb = _to_rgb(image)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"image is {width}x{height}; the watermark needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE} pixels")
    means = _cell_means(rgb)
    targets = _qim_targets(means, _payload_bits(mark_id)[_LAYOUT.bit_of_cell])
    return Image.fromarray(_move_cells(rgb, means, targets), "RGB")


def read_watermark(image: Image.Image) -> WatermarkReading:
    """The mark in ``image``, if any; images too small to carry one read as not found."""
    rgb = _to_rgb(image)
    if min(rgb.shape[:2]) < MIN_SIDE:
        return WatermarkReading(found=False, mark_id=None, confidence=0.0)
    votes = _bit_votes(_cell_means(rgb))
    confidence = float(np.abs(votes).mean())
    bits = (votes < 0).astype(np.uint8)
    mark_id = _valid_mark_id(bits)
    if mark_id is None or confidence < MIN_CONFIDENCE:
        return WatermarkReading(found=False, mark_id=None, confidence=confidence)
    return WatermarkReading(found=True, mark_id=mark_id, confidence=confidence)


# --- payload ---------------------------------------------------------------------------


def _check(mark_id: int) -> int:
    # keyed, so a forged or random 64-bit word passes only by chance (2**-16), and the
    # all-zero word (id 0, check 0) is not valid as a plain CRC would make it
    digest = hashlib.blake2b(mark_id.to_bytes(6, "big"), digest_size=2, key=_CHECK_KEY)
    return int.from_bytes(digest.digest(), "big")


def _payload_bits(mark_id: int) -> np.ndarray:
    word = (mark_id << CHECK_BITS) | _check(mark_id)
    return np.array([(word >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)],
                    np.uint8)


def _valid_mark_id(bits: np.ndarray) -> int | None:
    word = int("".join(map(str, bits.tolist())), 2)
    mark_id, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return mark_id if mark_id and _check(mark_id) == check else None


# --- pixels ----------------------------------------------------------------------------


def _to_rgb(image: Image.Image) -> np.ndarray:
    # Upright first: the intake decoder applies EXIF orientation before anything reads the
    # pixels, so the mark must be laid on the image as it is viewed. Alpha is dropped, as
    # the decoder does, so the reader sees the pixels that were marked.
    upright = ImageOps.exif_transpose(image)
    return np.asarray(upright.convert("RGB"))


def _cell_means(rgb: np.ndarray) -> np.ndarray:
    """Mean luminance of each grid cell, as float32 (GRID, GRID)."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(luma, (GRID, GRID), interpolation=cv2.INTER_AREA)


def _apply(rgb: np.ndarray, residual: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    full = cv2.resize(residual, (width, height), interpolation=cv2.INTER_LINEAR)
    # the same change on R, G and B moves Y by exactly that much (the weights sum to 1)
    # and leaves Cb and Cr unchanged, so hues stay as they were
    return cv2.add(rgb, cv2.merge([full, full, full]), dtype=cv2.CV_8U)


def _move_cells(rgb: np.ndarray, means: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``rgb`` changed smoothly so that its cell ``means`` come as close to ``targets`` as
    clipping allows."""
    height, width = rgb.shape[:2]
    residual = np.zeros((GRID, GRID), np.float32)
    marked = rgb
    for done in range(1, PASSES + 1):
        shortfall = _unblur(targets - means, height, width)
        residual = np.clip(residual + shortfall, -MAX_CHANGE, MAX_CHANGE)
        marked = _apply(rgb, residual)
        if done < PASSES:
            means = _cell_means(marked)
    return marked


def _unblur(change: np.ndarray, height: int, width: int) -> np.ndarray:
    """The grid residual whose bilinear upsampling to ``width`` x ``height``, averaged back
    onto the grid by the reader, changes the cell means by (very nearly) ``change``."""
    return _unblur_matrix(height) @ change @ _unblur_matrix(width).T


@functools.lru_cache(maxsize=64)
def _unblur_matrix(pixels: int) -> np.ndarray:
    """Damped inverse of the (GRID, GRID) matrix that upsampling to ``pixels`` and
    area-averaging back applies along one axis.

    Both resizes are separable and linear, so pushing the identity through them gives that
    matrix exactly, whatever the scale factor and including the borders. Bilinear blur
    spreads each cell's change into its neighbours (about [1/8, 3/4, 1/8] for scale factors
    of 2 and more, nothing at 1); left alone it costs about a third of the vote margin.
    """
    identity = np.eye(GRID, dtype=np.float32)
    upsampled = cv2.resize(identity, (pixels, GRID), interpolation=cv2.INTER_LINEAR)
    blur = cv2.resize(upsampled, (GRID, GRID), interpolation=cv2.INTER_AREA)
    # row j of `blur` is where a change to cell column j lands once resized there and back
    forward = blur.astype(np.float64).T
    gram = forward.T @ forward + UNBLUR_DAMPING * np.eye(GRID)
    inverse = np.linalg.solve(gram, forward.T).astype(np.float32)
    inverse.flags.writeable = False  # shared by every call through the cache
    return inverse


# --- quantisation index modulation -----------------------------------------------------


def _qim_targets(means: np.ndarray, cell_bits: np.ndarray) -> np.ndarray:
    """The nearest lattice point of each cell's bit: d + k * STEP for 0, + STEP / 2 for 1."""
    offset = _LAYOUT.dither + cell_bits * (STEP / 2)
    targets = offset + np.round((means - offset) / STEP) * STEP
    # a target outside 0..255 cannot be reached; the same bit's next point inward can
    targets = np.where(targets < 0, targets + STEP, targets)
    return np.where(targets > 255, targets - STEP, targets).astype(np.float32)


def _bit_votes(means: np.ndarray) -> np.ndarray:
    """Per payload bit, a soft vote in -1..1: > 0 says 0, < 0 says 1, |vote| is the margin."""
    # on bit 0's lattice the phase is 0 (cos 1), on bit 1's it is pi (cos -1), and halfway
    # between (a cell that says nothing) cos is 0
    phase = 2 * np.pi * (means - _LAYOUT.dither) / STEP
    sums = np.bincount(_LAYOUT.bit_of_cell.ravel(), weights=np.cos(phase).ravel(),
                       minlength=PAYLOAD_BITS)
    return sums / (CELLS / PAYLOAD_BITS)
