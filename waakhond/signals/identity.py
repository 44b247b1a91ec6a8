"""Who a face is, as a number: dlib's face-recognition ResNet (128 dimensions) after its
5-point alignment, for the consent registry and the input-output identity check of edits.

The 5-point landmark model is used, not the 68-point one, whose training data is licensed for
research only (../shared/docs/offline-models.md). Faces come from the face detector that ran
before; each is embedded on the same 800-pixel view the detector searched, since the network
sees a 150-pixel aligned chip whatever the source size. Embeddings are biometric data: they
never leave the process in a verdict (``SignalSet.to_dict`` reports only how many there are).
"""

from __future__ import annotations

import dlib
import face_recognition_models
import numpy as np

from waakhond.intake import DecodedImage
from waakhond.signals.base import (
    Box,
    FaceEmbedding,
    Identities,
    SignalSet,
    package_version,
)

# The same view the face detector searched (waakhond.signals.faces).
_EMBED_SIDE = 800
# Same person when the Euclidean distance is below this. dlib publishes 0.6 (99.38% on LFW);
# on the deepface pairs 0.6 accepted 0.32% of different-person pairs, 0.55 about 0.1% while
# keeping 97% of same-person pairs (docs/benchmarks.md, "Face verification").
SAME_PERSON = 0.55
# Looking one face up among many people multiplies the false accepts by their number, so the
# registry asks for a closer match (93.6% of same-person pairs, no false accept measured).
REGISTRY_MATCH = 0.5
DIMENSIONS = 128


class FaceEmbedder:
    """Embeds face crops; also used on its own to enrol photos in the registry."""

    def __init__(self) -> None:
        self._landmarks = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location())
        self._network = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location())

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        left, top, right, bottom = box
        shape = self._landmarks(rgb, dlib.rectangle(left, top, right, bottom))
        return np.asarray(self._network.compute_face_descriptor(rgb, shape), dtype=np.float32)


class FaceIdentityDetector:
    name = "identity"
    field = "identities"

    def __init__(self, embedder: FaceEmbedder | None = None) -> None:
        self.version = (f"dlib-{package_version('dlib-bin')}-resnet-v1-5point"
                        f"/face-recognition-models-{package_version('face_recognition_models')}")
        self.embedder = embedder or FaceEmbedder()

    def run(self, image: DecodedImage, earlier: SignalSet) -> Identities:
        if earlier.faces is None:  # the face detector failed: nothing to embed
            raise RuntimeError("no faces to embed; the face detector did not run")
        frames = {frame.index: frame for frame in image.frames}
        embeddings = []
        for index, face in enumerate(earlier.faces.faces):
            frame = frames[face.frame]
            view = frame.scaled(_EMBED_SIDE)
            factor = view.shape[1] / frame.rgb.shape[1]
            box = tuple(round(edge * factor) for edge in face.box)
            vector = self.embedder.embed(view, box)  # type: ignore[arg-type]
            embeddings.append(FaceEmbedding(index, tuple(float(v) for v in vector)))
        return Identities(embeddings)
