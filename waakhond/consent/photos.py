"""Enrolment photos to identity vectors, with the screener's own face detector and
embedder, so enrolled faces and screened faces are measured the same way. The photo is
decoded under the same intake limits as any upload and is not kept."""

from __future__ import annotations

import numpy as np

from waakhond.consent.registry import PhotoEmbedder
from waakhond.errors import Unavailable
from waakhond.intake import decode_image
from waakhond.screening import Screener
from waakhond.signals import SignalSet


def photo_embedder(screener: Screener) -> PhotoEmbedder:
    def embed(photo: bytes) -> list[np.ndarray]:
        # Looked up at use: the screener loads its models on first use.
        by_field = {detector.field: detector for detector in screener.detectors}
        if "faces" not in by_field or "identities" not in by_field:
            raise Unavailable("face opt-out is not available on this server: it runs without "
                              "the face models. Nothing was stored.")
        faces, identities = by_field["faces"], by_field["identities"]
        image = decode_image(photo, screener.settings.intake)
        signals = SignalSet()
        signals.faces = faces.run(image, signals)  # type: ignore[assignment]
        found = identities.run(image, signals)
        return [embedding.array() for embedding in found.embeddings]  # type: ignore[attr-defined]

    return embed
