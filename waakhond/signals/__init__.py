"""Detectors behind one protocol. Each turns a decoded image into a typed result."""

from waakhond.signals.base import (
    Detector,
    Face,
    Faces,
    Hashes,
    NsfwScore,
    NudityRegions,
    Provenance,
    Region,
    SignalSet,
)

__all__ = [
    "Detector",
    "Face",
    "Faces",
    "Hashes",
    "NsfwScore",
    "NudityRegions",
    "Provenance",
    "Region",
    "SignalSet",
]
