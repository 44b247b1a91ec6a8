"""The screener with fake detectors: cascade, timings and failing closed.

The real detectors are exercised in tests/test_models.py; these fakes only stand in for them
so the orchestration can be tested fast and with faults injected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from waakhond import Screener
from waakhond.config import ScreeningSettings
from waakhond.core import Action
from waakhond.errors import EmptyInput, UnknownCountry
from waakhond.signals import Face, Faces, NsfwScore, NudityRegions, Region


@dataclass
class FakeDetector:
    name: str
    field: str
    result: object = None
    error: Exception | None = None
    version: str = "fake-1"
    calls: int = 0

    def run(self, image, earlier):
        self.calls += 1
        if self.error:
            raise self.error
        return self.result


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 120, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def fakes(nsfw: float = 0.01, regions: list[Region] | None = None,
          faces: list[Face] | None = None) -> list[FakeDetector]:
    return [
        FakeDetector("nudity.regions", "nudity", NudityRegions(regions or [])),
        FakeDetector("nudity.nsfw", "nsfw", NsfwScore(nsfw, [nsfw])),
        FakeDetector("faces", "faces", Faces(faces or [])),
    ]


def screener(detectors, cascade: str = "auto") -> Screener:
    return Screener(ScreeningSettings(cascade=cascade), detectors=detectors)


def test_an_upload_without_any_body_part_skips_the_costly_detectors():
    detectors = fakes()
    verdict = screener(detectors).check_image(jpeg_bytes())
    assert verdict.action is Action.ALLOW
    assert [d.calls for d in detectors] == [1, 0, 0]
    assert set(verdict.timings_ms) == {"intake", "nudity.regions"}


def test_a_body_part_seen_by_the_region_detector_brings_in_the_whole_image_score():
    detectors = fakes(regions=[Region("FEET_EXPOSED", 0.6, (0, 0, 9, 9))])
    verdict = screener(detectors).check_image(jpeg_bytes())
    assert [d.calls for d in detectors] == [1, 1, 0]
    assert "nudity.nsfw" in verdict.timings_ms


def test_cascade_always_runs_faces_on_every_image():
    detectors = fakes()
    screener(detectors, cascade="always").check_image(jpeg_bytes())
    assert detectors[2].calls == 1


def test_a_nudity_signal_triggers_face_and_age_estimation():
    child = Face((1, 1, 20, 20), ("hog",), 11.0, 0.9)
    detectors = fakes(regions=[Region("FEMALE_BREAST_EXPOSED", 0.9, (0, 0, 9, 9))],
                      faces=[child])
    verdict = screener(detectors).check_image(jpeg_bytes(), context="generated")
    assert detectors[2].calls == 1
    assert verdict.action is Action.BLOCK_AND_REPORT
    assert verdict.signals["faces"]["faces"][0]["apparent_age"] == 11.0


@pytest.mark.parametrize("context", ["upload", "generated", "edit_input"])
def test_a_detector_that_raises_makes_the_verdict_block(context):
    detectors = fakes()
    detectors[0].error = RuntimeError("model file vanished")
    verdict = screener(detectors).check_image(jpeg_bytes(), context=context)
    assert verdict.action is Action.BLOCK
    assert verdict.reasons[0].rule_id == "system.detector_failure"
    assert "model file vanished" in verdict.signals["errors"]["nudity.regions"]


def test_an_unexpected_policy_failure_blocks_and_says_why(monkeypatch):
    from waakhond.policy.engine import Policy

    def broken(self, signals, context):
        raise ZeroDivisionError("bug in a rule")

    monkeypatch.setattr(Policy, "decide", broken)
    verdict = screener(fakes()).check_image(jpeg_bytes())
    assert verdict.action is Action.BLOCK
    assert verdict.reasons[0].rule_id == "system.internal_error"
    assert "bug in a rule" in verdict.reasons[0].evidence["error"]


def test_bad_input_raises_a_typed_error_instead_of_a_verdict():
    with pytest.raises(EmptyInput):
        screener(fakes()).check_image(b"")


def test_an_unknown_country_is_refused_before_any_detector_runs():
    detectors = fakes()
    with pytest.raises(UnknownCountry):
        screener(detectors).check_image(jpeg_bytes(), country="XX")
    assert all(d.calls == 0 for d in detectors)


def test_unknown_context_is_refused():
    with pytest.raises(ValueError, match="unknown context"):
        screener(fakes()).check_image(jpeg_bytes(), context="dream")


def test_verdict_serialises_to_the_documented_json_shape():
    verdict = screener(fakes()).check_image(jpeg_bytes(), country="nl")
    data = verdict.to_dict()
    assert data["action"] == "allow"
    assert data["country"] == "NL"
    assert data["jurisdiction"] == ["base", "EU", "NL"]
    assert data["image"]["format"] == "JPEG"
    assert data["reasons"][0]["rule_id"] == "default.allow"
    assert data["signals"]["versions"]["nudity.regions"] == "fake-1"
    assert "ALLOW" in str(verdict)
