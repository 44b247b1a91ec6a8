"""The one protocol every detector follows, and the typed results they produce.

A detector turns a decoded image into a result; it decides nothing. Results are plain
dataclasses so the policy engine reads named fields, never loose dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from waakhond.intake import DecodedImage

if TYPE_CHECKING:
    from waakhond.signals.prompt import PromptIntents

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels of the original frame


@dataclass(frozen=True)
class Hashes:
    md5: str
    sha256: str
    pdq: str  # 64 hex characters, 256 bits
    pdq_quality: int  # 0-100; matches on hashes below 50 are unreliable
    # The PDQ of the 8 rotations and flips (the first is pdq itself), for bank look-ups.
    pdq_dihedral: tuple[str, ...] = ()
    # The same 8 of the picture inside a solid border, when the image has one (a letterboxed
    # or framed re-upload); empty otherwise, or when that picture's quality is below 50.
    pdq_inside_border: tuple[str, ...] = ()


@dataclass(frozen=True)
class BankMatch:
    bank: str
    kind: str  # waakhond.hashing.banks.BankKind
    entry_id: int
    signal_type: str
    value: str  # the bank's hash
    distance: int  # 0 for exact types
    metadata: dict[str, Any]
    note: str


@dataclass(frozen=True)
class BankMatches:
    """What the hash banks say about one image: its hashes matched, with the entries."""

    matches: tuple[BankMatch, ...] = ()
    # Matches not acted on: a negative (known-good) bank matched too, or the bank is rolled
    # out to a share of content that excludes this one.
    suppressed: tuple[BankMatch, ...] = ()
    quarantined: tuple[int, ...] = ()  # entries this look-up paused as a flood


@dataclass(frozen=True)
class Region:
    label: str  # a NudeNet class such as FEMALE_BREAST_COVERED
    score: float
    box: Box
    frame: int = 0


@dataclass(frozen=True)
class NudityRegions:
    regions: list[Region]

    def max_score(self, labels: frozenset[str] | set[str]) -> float:
        return max((r.score for r in self.regions if r.label in labels), default=0.0)


@dataclass(frozen=True)
class NsfwScore:
    score: float  # the highest P(NSFW) over the screened frames
    per_frame: list[float]


@dataclass(frozen=True)
class Face:
    box: Box
    sources: tuple[str, ...]  # which detectors found it: hog, nudenet, haar
    apparent_age: float | None  # expectation of the age distribution averaged over views
    p_minor: float | None  # P(apparent age < 18): the highest over the views
    frame: int = 0
    youngest_age: float | None = None  # the youngest expectation among the views

    @property
    def youngest(self) -> float | None:
        return self.youngest_age if self.youngest_age is not None else self.apparent_age


@dataclass(frozen=True)
class Faces:
    faces: list[Face]


@dataclass(frozen=True)
class Provenance:
    manifest_present: bool
    ai_generated: bool
    digital_source_type: str | None = None
    claim_generator: str | None = None
    validation_state: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class FaceEmbedding:
    """A face as a 128-d identity vector (waakhond.signals.identity). Biometric data: never
    written into a verdict, a log or an answer."""

    face: int  # index into the faces signal
    vector: tuple[float, ...]

    def array(self) -> np.ndarray:
        return np.asarray(self.vector, dtype=np.float32)


@dataclass(frozen=True)
class Identities:
    embeddings: list[FaceEmbedding]


@dataclass(frozen=True)
class ReferenceFace:
    """A face from an edit's input photo, given to the screening of its outputs so the
    policy can tell whether an output shows the same person (the nudification check)."""

    vector: tuple[float, ...]
    youngest_age: float | None
    p_minor: float | None

    def array(self) -> np.ndarray:
        return np.asarray(self.vector, dtype=np.float32)


@dataclass(frozen=True)
class RegistryMatch:
    """A face that matches someone in the opt-out registry: only what they do not consent
    to, never who they are."""

    face: int
    scope: str  # waakhond.consent.registry.Scope, as in force (verification applied)
    distance: float


@dataclass(frozen=True)
class RegistryMatches:
    matches: list[RegistryMatch]


@dataclass
class SignalSet:
    """Everything the detectors found about one image; a field is None when it did not run."""

    hashes: Hashes | None = None
    bank_matches: BankMatches | None = None
    nudity: NudityRegions | None = None
    nsfw: NsfwScore | None = None
    faces: Faces | None = None
    provenance: Provenance | None = None
    prompt: PromptIntents | None = None
    identities: Identities | None = None
    registry_matches: RegistryMatches | None = None
    # Given by the caller, not found by a detector: the faces of an edit's input photo, and
    # the labels of the prompt that produced a generated image.
    input_faces: tuple[ReferenceFace, ...] = ()
    prompt_labels: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)  # detector name -> what went wrong
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without biometric vectors: only how many faces were compared."""
        data = {key: value for key, value in asdict(self).items()
                if value not in (None, {}, ()) and key not in ("identities", "input_faces")}
        if self.identities is not None:
            data["identities"] = {"faces_embedded": len(self.identities.embeddings)}
        return data

    def reference_faces(self) -> tuple[ReferenceFace, ...]:
        """This image's faces, for comparing an edit's outputs with it."""
        if self.identities is None or self.faces is None:
            return ()
        return tuple(ReferenceFace(e.vector, self.faces.faces[e.face].youngest,
                                   self.faces.faces[e.face].p_minor)
                     for e in self.identities.embeddings)


class Detector(Protocol):
    """A detector: a name for timings and errors, a version for the record, and ``run``."""

    name: str
    version: str
    field: str  # the SignalSet field its result goes into

    def run(self, image: DecodedImage, earlier: SignalSet) -> object:
        """Return this detector's result; ``earlier`` holds results of detectors run before."""
        ...


def package_version(distribution: str) -> str:
    """The installed version of a package, for detector version strings."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
