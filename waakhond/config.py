"""Settings for screening, with defaults that are safe on a laptop.

Every limit can be set through an environment variable (``WAAKHOND_<NAME>``) so a deployment
changes them without code; the defaults and their reasons are documented in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Literal

Cascade = Literal["auto", "always"]


@dataclass(frozen=True)
class IntakeLimits:
    # 50 MB holds any real photo; larger uploads are refused before we read them into models.
    max_bytes: int = 50 * 1024 * 1024
    # 50 megapixels: a 8660 x 5773 photo. A decompression bomb claims far more in its header.
    max_pixels: int = 50_000_000
    # No real image is longer than this on one side; absurd strips are hostile.
    max_side: int = 30_000
    # Animated images: refuse absurd frame counts, screen an even sample of frames.
    max_frames: int = 10_000
    frames_to_screen: int = 8


@dataclass(frozen=True)
class ScreeningSettings:
    intake: IntakeLimits = IntakeLimits()
    # "auto": the policy decides which costly detectors an image needs (face and age
    # estimation after a nudity signal or for an edit input; the whole-image NSFW score once
    # the region detector sees any body part). "always": every detector on every image.
    cascade: Cascade = "auto"
    # ONNX Runtime threads per model session; 1 when several worker processes share the cores.
    model_threads: int = 2

    @classmethod
    def from_env(cls, **overrides: object) -> ScreeningSettings:
        limits = {
            f.name: int(os.environ[f"WAAKHOND_{f.name.upper()}"])
            for f in fields(IntakeLimits)
            if f"WAAKHOND_{f.name.upper()}" in os.environ
        }
        values: dict[str, object] = {"intake": IntakeLimits(**limits)}
        cascade = os.environ.get("WAAKHOND_CASCADE")
        if cascade:
            if cascade not in ("auto", "always"):
                raise ValueError("WAAKHOND_CASCADE must be 'auto' or 'always'")
            values["cascade"] = cascade
        if "WAAKHOND_MODEL_THREADS" in os.environ:
            values["model_threads"] = int(os.environ["WAAKHOND_MODEL_THREADS"])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
