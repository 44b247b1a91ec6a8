"""The opt-out face registry and the nudification check.

Policy paths are tested at the signal level (numbers in; no sexual image exists anywhere);
the registry with real face photos of adults (shared/data/faces) through the real face
detector and embedder; privacy: no photo stored, nothing revealed about other enrolments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.signals import ADULT, CHILD, make_signals
from waakhond.consent.matcher import RegistryMatcher
from waakhond.consent.registry import Registry, RegistryError
from waakhond.core import Action, Context
from waakhond.gateway.access import Scope as KeyScope
from waakhond.policy import load_policy
from waakhond.signals.base import (
    FaceEmbedding,
    Identities,
    ReferenceFace,
    RegistryMatch,
    RegistryMatches,
)
from waakhond.store import Database
from waakhond.store.models import ConsentEnrolment, FaceEmbeddingRow

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
PERSON_A, PERSON_A_AGAIN, PERSON_B = (FACES / name for name in ("img1.jpg", "img2.jpg",
                                                                  "img20.jpg"))


def vector(seed: int) -> tuple[float, ...]:
    """A synthetic identity vector: different seeds are far apart, as different people are."""
    values = np.random.default_rng(seed).normal(0, 0.09, 128).astype(np.float32)
    return tuple(float(v) for v in values)


def same_person_signals(input_face: tuple[float, float], **nudity: float):
    """An edit's output whose one face is the input photo's person."""
    signals = make_signals(faces=[ADULT], **nudity)
    signals.identities = Identities([FaceEmbedding(0, vector(1))])
    age, p_minor = input_face
    signals.input_faces = (ReferenceFace(vector(1), age, p_minor),)
    return signals


def decide(signals, context=Context.GENERATED):
    return load_policy(None).decide(signals, context)


# -- the nudification check, at the signal level ---------------------------------------------


def test_a_sexual_edit_of_the_input_person_is_blocked_whatever_the_prompt_said():
    decision = decide(same_person_signals(ADULT, exposed=0.9, nsfw=0.9))
    assert decision.action is Action.BLOCK and "NCII_REAL_PERSON" in decision.labels
    assert any(r.rule_id == "nudify.real_person" for r in decision.reasons)


def test_a_suggestive_edit_of_a_possible_minor_is_blocked_and_reported():
    decision = decide(same_person_signals(CHILD, covered=0.9, nsfw=0.7))
    assert decision.action is Action.BLOCK_AND_REPORT and "SEXUAL_MINOR" in decision.labels


def test_an_edit_showing_someone_else_or_nothing_sexual_is_not_a_nudification():
    harmless = decide(same_person_signals(ADULT))
    assert not any(r.rule_id.startswith("nudify") for r in harmless.reasons)
    other = make_signals(faces=[ADULT], covered=0.9, nsfw=0.7)
    other.identities = Identities([FaceEmbedding(0, vector(2))])
    other.input_faces = (ReferenceFace(vector(1), 40.0, 0.01),)
    assert not any(r.rule_id.startswith("nudify") for r in decide(other).reasons)


@pytest.mark.parametrize(("scope", "context", "nudity", "blocked"), [
    ("no_sexual", Context.UPLOAD, {"covered": 0.9, "nsfw": 0.7}, True),
    ("no_sexual", Context.EDIT_INPUT, {}, False),
    ("no_edits", Context.EDIT_INPUT, {}, True),
    ("no_edits", Context.UPLOAD, {}, False),
])
def test_the_registry_scope_decides(scope, context, nudity, blocked):
    signals = make_signals(faces=[ADULT], **nudity)
    signals.registry_matches = RegistryMatches([RegistryMatch(0, scope, 0.3)])
    decision = decide(signals, context)
    assert ("CONSENT_REGISTRY" in decision.labels) is blocked
    if blocked:
        assert decision.action is Action.BLOCK
        reason = next(r for r in decision.reasons if r.rule_id.startswith("consent."))
        assert reason.evidence["registry_scope"] == [scope]  # what is forbidden, never who
        assert not {"enrolment", "reference", "distance"} & set(reason.evidence)


def test_identity_vectors_never_leave_in_a_verdict():
    signals = same_person_signals(ADULT)
    data = signals.to_dict()
    assert data["identities"] == {"faces_embedded": 1} and "input_faces" not in data


# -- the registry ----------------------------------------------------------------------------


class FakeEmbedder:
    """Unit tests: each photo's bytes name the faces in it, e.g. b"1" or b"1,2" or b""."""

    def __call__(self, photo: bytes) -> list[np.ndarray]:
        return [np.asarray(vector(int(seed))) for seed in photo.decode().split(",") if seed]


def identities(*seeds: int) -> Identities:
    return Identities([FaceEmbedding(i, vector(seed)) for i, seed in enumerate(seeds)])


def test_enrol_match_change_and_delete(db_url):
    db = Database(db_url)
    matcher = RegistryMatcher(db)
    registry = Registry(db, FakeEmbedder(), on_change=matcher.refresh)
    enrolled = registry.enrol([b"1", b"1"], "no_edits", "self")
    assert enrolled.in_force == "no_sexual"  # stricter scopes wait for verification
    assert [m.scope for m in matcher.match(identities(1, 2)).matches] == ["no_sexual"]
    registry.set_verification(enrolled.reference, "verified")
    assert matcher.match(identities(1)).matches[0].scope == "no_edits"
    assert registry.status(enrolled.reference, "wrong") is None
    assert registry.status(enrolled.reference, enrolled.secret)["faces"] == 2
    assert registry.delete(enrolled.reference, enrolled.secret)
    assert matcher.match(identities(1)).matches == []  # gone at once
    with db.session() as session:
        assert session.scalars(select(FaceEmbeddingRow)).all() == []
        tombstone = session.scalar(select(ConsentEnrolment))
        assert (tombstone.scope, tombstone.enrolled_by, tombstone.status) == ("", "", "deleted")
    assert registry.status(enrolled.reference, enrolled.secret) is None


def test_another_process_sees_a_deletion_within_a_refresh(db_url):
    db = Database(db_url)
    elsewhere = RegistryMatcher(db)
    registry = Registry(db, FakeEmbedder())
    enrolled = registry.enrol([b"3"], "no_sexual", "representative")
    elsewhere.refresh()
    assert elsewhere.match(identities(3)).matches
    registry.delete(enrolled.reference, enrolled.secret)
    elsewhere.refresh()
    assert elsewhere.match(identities(3)).matches == []


class PlacedEmbedder:
    """Unit tests: each photo's bytes name one face placed at a chosen vector."""

    def __init__(self, **faces: np.ndarray) -> None:
        self.faces = faces

    def __call__(self, photo: bytes) -> list[np.ndarray]:
        return [self.faces[photo.decode()]]


def placed(*offsets: tuple[int, float]) -> np.ndarray:
    """A face at the shared centre of vector(0), moved by `distance` along axis `axis` for
    each (axis, distance); axes are orthogonal, so distances add as Pythagoras says."""
    moved = np.asarray(vector(0), np.float64)
    for axis, distance in offsets:
        moved[axis] += distance
    return moved.astype(np.float32)


def test_a_face_as_near_to_two_enrolled_people_is_neither(db_url):
    """At registry scale nearly every face is within the threshold of somebody: a match needs
    the enrolled face to be clearly nearer than the next one (matcher.MARGIN)."""
    db = Database(db_url)
    matcher = RegistryMatcher(db)
    registry = Registry(db, PlacedEmbedder(a=placed((0, 0.45)), b=placed((1, 0.45))),
                        on_change=matcher.refresh)
    registry.enrol([b"a"], "no_sexual", "self")
    registry.enrol([b"b"], "no_sexual", "self")

    def look_up(face: np.ndarray) -> list[RegistryMatch]:
        return matcher.match(Identities([FaceEmbedding(0, tuple(map(float, face)))])).matches

    assert look_up(placed()) == []  # 0.45 from each: below REGISTRY_MATCH, but ambiguous
    assert [m.distance for m in look_up(placed((0, 0.3)))] == [0.15]  # 0.15 against 0.54


def test_enrolling_the_same_face_again_hides_nothing(db_url):
    """A second enrolment of one face (by the person again, or by someone trying to mask the
    first) is not 'somebody else': the face still matches, under the strictest scope."""
    db = Database(db_url)
    matcher = RegistryMatcher(db)
    face = placed((0, 0.2))
    registry = Registry(db, PlacedEmbedder(first=face, copy=face, near=placed((0, 0.2), (2, 0.1))),
                        on_change=matcher.refresh)
    first = registry.enrol([b"first"], "no_edits", "self")
    registry.set_verification(first.reference, "verified")
    registry.enrol([b"copy"], "no_sexual", "self")
    registry.enrol([b"near"], "no_sexual", "self")
    found = matcher.match(Identities([FaceEmbedding(0, tuple(map(float, placed((0, 0.25)))))]))
    assert [(m.scope, m.distance) for m in found.matches] == [("no_edits", 0.05)]


@pytest.mark.parametrize(("photos", "message"), [
    ([b""], "no face"), ([b"1,2"], "2 faces"), ([], "1 to 10"), ([b"1"] * 11, "1 to 10"),
])
def test_enrolment_needs_photos_with_one_face_each(db_url, photos, message):
    registry = Registry(Database(db_url), FakeEmbedder())
    with pytest.raises(RegistryError, match=message):
        registry.enrol(photos, "no_sexual", "self")


def test_an_unknown_scope_is_refused(db_url):
    with pytest.raises(RegistryError, match="scope must be one of"):
        Registry(Database(db_url), FakeEmbedder()).enrol([b"1"], "everything", "self")


# -- with real faces, through the API --------------------------------------------------------


@pytest.fixture(scope="module")
def real_screener():
    from waakhond.screening import Screener
    from waakhond.signals.faces import FaceAgeDetector
    from waakhond.signals.identity import FaceIdentityDetector

    return Screener(detectors=[FaceAgeDetector(1), FaceIdentityDetector()])


def test_real_faces_enrol_and_match_only_the_same_person(tmp_path, real_screener):
    from waakhond.consent.photos import photo_embedder

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    matcher = RegistryMatcher(db)
    embed = photo_embedder(real_screener)
    Registry(db, embed, on_change=matcher.refresh).enrol([PERSON_A.read_bytes()], "no_sexual",
                                                         "self")

    def looked_up(path: Path) -> list[RegistryMatch]:
        vectors = embed(path.read_bytes())
        return matcher.match(Identities([FaceEmbedding(i, tuple(map(float, v)))
                                         for i, v in enumerate(vectors)])).matches

    assert [m.scope for m in looked_up(PERSON_A_AGAIN)] == ["no_sexual"]
    assert looked_up(PERSON_B) == []


def test_the_registry_over_the_api(client, real_screener, monkeypatch):
    from waakhond.consent.photos import photo_embedder

    monkeypatch.setattr(client.app.state.registry, "embed_photo", photo_embedder(real_screener))
    photo = PERSON_A.read_bytes()
    made = client.post("/v1/consent/enrolments", files=[("photos", ("a.jpg", photo))],
                       data={"scope": "no_edits"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["in_force"] == "no_sexual" and "verified" in body["message"]
    secret = {"X-Consent-Secret": body["secret"]}
    reference = body["reference"]
    assert client.get(f"/v1/consent/enrolments/{reference}",
                      headers={"X-Consent-Secret": "guess"}).status_code == 404
    admin = client.gateway.keys.create("staff", [KeyScope.ADMIN.value]).token
    verified = client.post(f"/v1/consent/enrolments/{reference}/verification",
                           json={"verification": "verified"},
                           headers={"Authorization": f"Bearer {admin}"})
    assert verified.json()["in_force"] == "no_edits"
    changed = client.patch(f"/v1/consent/enrolments/{reference}", json={"scope": "no_sexual"},
                           headers=secret)
    assert changed.json()["scope"] == "no_sexual"
    none = client.post("/v1/consent/enrolments",
                       files=[("photos", ("x.png", _plain_png()))])
    assert none.status_code == 400 and "no face" in none.json()["error"]["message"]
    assert client.delete(f"/v1/consent/enrolments/{reference}", headers=secret).json()[
        "deleted"]
    assert client.get(f"/v1/consent/enrolments/{reference}", headers=secret).status_code == 404


def _plain_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 200)).save(out, "PNG")
    return out.getvalue()


# -- the nudification check through the gateway, with real faces -----------------------------


class ReturnsPhoto:
    """A generator stand-in whose "edit" returns a fixed photo (harmless: a face photo)."""

    name = "fixed-photo"

    def __init__(self, photo: Path) -> None:
        self.photo = photo

    def create(self, request: object) -> list[bytes]:
        return [self.photo.read_bytes()]


class SuggestiveSignal:
    """Signal level: reports a covered region on every image, so the policy treats each image
    as suggestive. The images themselves are ordinary face photos."""

    name, field, version = "nudity.regions", "nudity", "fake-suggestive"

    def run(self, image: object, earlier: object) -> object:
        from waakhond.signals import NudityRegions, Region

        return NudityRegions([Region("FEMALE_BREAST_COVERED", 0.95, (0, 0, 10, 10))])


@pytest.mark.parametrize(("output", "blocked"), [(PERSON_A_AGAIN, True), (PERSON_B, False)])
def test_an_edit_whose_output_shows_the_input_person_sexualised_is_withheld(
        tmp_path, monkeypatch, output, blocked):
    import openai

    from tests.gateway_server import serving
    from waakhond.api.app import create_app
    from waakhond.config import GatewaySettings, ScreeningSettings
    from waakhond.gateway.setup import build_gateway
    from waakhond.screening import Screener
    from waakhond.signals.faces import FaceAgeDetector
    from waakhond.signals.hashes import HashDetector
    from waakhond.signals.identity import FaceIdentityDetector
    from waakhond.signals.prompt import PromptIntentDetector

    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    screener = Screener(ScreeningSettings(model_threads=1), detectors=[
        HashDetector(), SuggestiveSignal(), FaceAgeDetector(1), FaceIdentityDetector()],
        prompt_detector=PromptIntentDetector(1))
    settings = GatewaySettings()
    gateway = build_gateway(settings, db=Database(f"sqlite:///{tmp_path / 'g.db'}"),
                            screener=screener, upstream=ReturnsPhoto(output))
    gateway.users.set("editor", tier="verified")
    token = gateway.keys.create("t", [KeyScope.GENERATE.value]).token
    with serving(create_app(gateway, settings)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
        with PERSON_A.open("rb") as photo:
            if not blocked:
                assert client.images.edit(image=photo, prompt="make the sky orange",
                                          user="editor", size="256x256").data
                return
            with pytest.raises(openai.BadRequestError) as caught:
                client.images.edit(image=photo, prompt="make the sky orange", user="editor",
                                   size="256x256")
    assert "nudify.real_person" in caught.value.body["waakhond"]["rules"]


def test_the_registry_on_the_command_line(tmp_path, monkeypatch, capsys):
    from waakhond.cli import main

    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    assert main(["consent", "enrol", str(PERSON_A), "--scope", "no_edits"]) == 0
    enrolled = json.loads(capsys.readouterr().out)
    assert enrolled["faces"] == 1 and enrolled["in_force"] == "no_sexual"
    assert main(["consent", "verify", enrolled["reference"], "--result", "verified"]) == 0
    assert json.loads(capsys.readouterr().out)["in_force"] == "no_edits"
    secret = ["--secret", enrolled["secret"]]
    assert main(["consent", "delete", enrolled["reference"], *secret]) == 0
    assert main(["consent", "status", enrolled["reference"], *secret]) == 1
    assert main(["consent", "enrol", str(tmp_path / "missing.jpg")]) == 2
