"""Bank matches as a detector: the image's hashes looked up in every hash bank."""

from __future__ import annotations

from waakhond.hashing.matcher import HashMatcher
from waakhond.intake import DecodedImage
from waakhond.signals.base import BankMatches, SignalSet


class BankMatchDetector:
    name = "banks"
    field = "bank_matches"
    version = "pdq-mih+exact"

    def __init__(self, matcher: HashMatcher) -> None:
        self.matcher = matcher

    def run(self, image: DecodedImage, earlier: SignalSet) -> BankMatches:
        if earlier.hashes is None:  # the hash detector failed: nothing to look up
            raise RuntimeError("no hashes to look up; the hash detector did not run")
        return self.matcher.match(earlier.hashes)
