"""Cryptographic and perceptual hashes of the input, for hash banks and the record."""

from __future__ import annotations

import hashlib

import numpy as np
import pdqhash

from waakhond.hashing.signal_types import MIN_PDQ_QUALITY
from waakhond.intake import DecodedImage, Frame
from waakhond.signals.base import Hashes, SignalSet, package_version

# A copy re-uploaded with a solid border added (letterbox, pillarbox, a frame) hashes 80 bits
# or more from the original (bench/hash_robustness.py), so the picture inside such a border is
# hashed as well and looked up beside the image itself.
_BORDER_TOLERANCE = 24  # per channel: JPEG noise around a solid colour
_MIN_BORDER_SHARE = 0.02  # of the area: a thinner edge is not worth a second hash
_MIN_INSIDE_SIDE = 64  # pixels: less is too little picture for a meaningful PDQ
_BORDER_PROBE_SIDE = 256  # the border is found on a copy this size, not at full resolution


def pdq_hex(bits: np.ndarray) -> str:
    """PDQ bits as the 64-character hex string hash exchanges use (first bit most significant)."""
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def inside_border(frame: Frame) -> np.ndarray | None:
    """The full-resolution picture inside a solid border, or None when there is none."""
    probe = frame.scaled(_BORDER_PROBE_SIDE)
    differs = np.abs(probe.astype(np.int16) - probe[0, 0]).max(axis=2) > _BORDER_TOLERANCE
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if len(rows) == 0 or not (_on_both_ends(rows, len(differs)) or
                              _on_both_ends(cols, len(differs[0]))):
        return None  # one flat colour, or a flat band on one side only (a wall, the sky)
    height, width = frame.rgb.shape[:2]
    top, bottom = _inner_span(rows, probe.shape[0], height)
    left, right = _inner_span(cols, probe.shape[1], width)
    inside_share = (bottom - top) * (right - left) / (height * width)
    if inside_share > 1 - _MIN_BORDER_SHARE or min(bottom - top, right - left) < _MIN_INSIDE_SIDE:
        return None
    return np.ascontiguousarray(frame.rgb[top:bottom, left:right])


def _on_both_ends(differing: np.ndarray, size: int) -> bool:
    """A border at both ends of an axis: a letterbox, a pillarbox, a frame."""
    return bool(differing[0] > 0 and differing[-1] < size - 1)


def _inner_span(differing: np.ndarray, probe_size: int, full_size: int) -> tuple[int, int]:
    """Full-resolution start and end of the picture along one axis. Where there is a border,
    the edge moves one probe pixel inward: that pixel mixes border and picture."""
    start = differing[0] + 1 if differing[0] > 0 else 0
    end = differing[-1] if differing[-1] < probe_size - 1 else probe_size
    scale = full_size / probe_size
    return round(start * scale), round(end * scale)


class HashDetector:
    name = "hashes"
    field = "hashes"

    def __init__(self) -> None:
        self.version = f"md5+sha256+pdqhash-{package_version('pdqhash')}"

    def run(self, image: DecodedImage, earlier: SignalSet) -> Hashes:
        # PDQ is computed on the full-resolution first frame: hashing a downscaled copy drifts
        # up to 14 bits from what other tools compute on the same file (measured on
        # shared/data/faces), which would eat into the match distance of exchanged lists.
        # The 8 rotations and flips cost little more than one hash (one DCT, then
        # permutations), and let banks match rotated or mirrored copies.
        dihedral, quality, inside = pdq_hashes(image.first)
        return Hashes(
            md5=hashlib.md5(image.data).hexdigest(),
            sha256=hashlib.sha256(image.data).hexdigest(),
            pdq=dihedral[0],
            pdq_quality=quality,
            pdq_dihedral=dihedral,
            pdq_inside_border=inside,
        )


def pdq_hashes(frame: Frame) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    """The 8 dihedral PDQ hashes of a frame (plain first), their quality, and the 8 of the
    picture inside its border (empty when it has none or that picture's quality is < 50)."""
    dihedral, quality = _pdq_dihedral(frame.rgb)
    inside = inside_border(frame)
    if inside is None:
        return dihedral, quality, ()
    inside_dihedral, inside_quality = _pdq_dihedral(inside)
    return dihedral, quality, inside_dihedral if inside_quality >= MIN_PDQ_QUALITY else ()


def _pdq_dihedral(rgb: np.ndarray) -> tuple[tuple[str, ...], int]:
    dihedral, quality = pdqhash.compute_dihedral(rgb)
    return tuple(pdq_hex(np.asarray(bits)) for bits in dihedral), int(quality)
