"""Registry matches as a detector: the faces' identity vectors looked up in the opt-out
registry. The result says which face matched and what its person does not consent to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from waakhond.intake import DecodedImage
from waakhond.signals.base import RegistryMatches, SignalSet

if TYPE_CHECKING:
    from waakhond.consent.matcher import RegistryMatcher


class RegistryMatchDetector:
    name = "registry"
    field = "registry_matches"
    version = "dlib-resnet-l2"

    def __init__(self, matcher: RegistryMatcher) -> None:
        self.matcher = matcher

    def run(self, image: DecodedImage, earlier: SignalSet) -> RegistryMatches:
        if earlier.identities is None:  # the identity detector failed: nothing to look up
            raise RuntimeError("no identity vectors to look up; the identity detector did "
                               "not run")
        return self.matcher.match(earlier.identities)
