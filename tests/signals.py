"""Signal fixtures for policy tests: numbers in, no images and no models.

The minor and nudity paths are tested only here, at the signal level (DEVELOPERS.md).
"""

from __future__ import annotations

from waakhond.signals import Face, Faces, NsfwScore, NudityRegions, Provenance, Region, SignalSet

_BOX = (10, 10, 110, 110)


def make_signals(
    exposed: float = 0.0,
    covered: float = 0.0,
    nsfw: float = 0.0,
    faces: list[tuple[float, float]] | None = None,
    declared_ai: bool = False,
    errors: dict[str, str] | None = None,
) -> SignalSet:
    """A SignalSet. ``faces`` is a list of (apparent_age, p_minor); None means faces never ran."""
    regions = []
    if exposed:
        regions.append(Region("FEMALE_BREAST_EXPOSED", exposed, _BOX))
    if covered:
        regions.append(Region("FEMALE_BREAST_COVERED", covered, _BOX))
    return SignalSet(
        nudity=NudityRegions(regions),
        nsfw=NsfwScore(nsfw, [nsfw]),
        faces=None if faces is None else Faces(
            [Face(_BOX, ("hog",), age, p_minor) for age, p_minor in faces]
        ),
        provenance=Provenance(
            manifest_present=declared_ai,
            ai_generated=declared_ai,
            digital_source_type="http://cv.iptc.org/newscodes/digitalsourcetype/"
            "trainedAlgorithmicMedia" if declared_ai else None,
        ),
        errors=errors or {},
    )


CHILD = (12.0, 0.95)
YOUNG_ADULT = (23.0, 0.05)  # an adult inside the protective margin
ADULT = (40.0, 0.01)
