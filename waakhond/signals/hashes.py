"""Cryptographic and perceptual hashes of the input, for hash banks and the record."""

from __future__ import annotations

import hashlib

import numpy as np
import pdqhash

from waakhond.intake import DecodedImage
from waakhond.signals.base import Hashes, SignalSet, package_version


def pdq_hex(bits: np.ndarray) -> str:
    """PDQ bits as the 64-character hex string hash exchanges use (first bit most significant)."""
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


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
        dihedral, quality = pdqhash.compute_dihedral(image.first.rgb)
        hexes = tuple(pdq_hex(np.asarray(bits)) for bits in dihedral)
        return Hashes(
            md5=hashlib.md5(image.data).hexdigest(),
            sha256=hashlib.sha256(image.data).hexdigest(),
            pdq=hexes[0],
            pdq_quality=int(quality),
            pdq_dihedral=hexes,
        )
