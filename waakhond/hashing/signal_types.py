"""The hash kinds a bank can hold. Video hashes (vPDQ) can join as another entry here.

Each type also answers to the names python-threatexchange, HMA and StopNCII give it, so their
lists import as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal

# PDQ hashes of flat or featureless images (quality < 50) match unrelated images.
MIN_PDQ_QUALITY = 50
# The largest PDQ distance a bank may match at: the usual threshold, and the most our index
# finds with exact recall.
MAX_DISTANCE = 31


class Matching(StrEnum):
    HAMMING = "hamming"  # near matches by bit distance
    EXACT = "exact"


@dataclass(frozen=True)
class SignalType:
    name: str
    matching: Matching
    hex_length: int
    # Names other tools use for the same hash (threatexchange, StopNCII, HMA exports).
    aliases: tuple[str, ...] = ()

    def validate(self, value: str) -> str:
        """The value in canonical form (lower-case hex), or ValueError saying what is wrong."""
        value = value.strip().lower()
        if len(value) != self.hex_length or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"a {self.name} hash is {self.hex_length} hex characters, "
                             f"got {value[:80]!r}")
        return value


PDQ = SignalType("pdq", Matching.HAMMING, 64, (PdqSignal.get_name(), "ImagePDQ", "photo_pdq"))
MD5 = SignalType("md5", Matching.EXACT, 32, (VideoMD5Signal.get_name(), "VideoMD5", "photo_md5"))
SHA256 = SignalType("sha256", Matching.EXACT, 64, (VideoSHA256Signal.get_name(),))
SIGNAL_TYPES = {t.name: t for t in (PDQ, MD5, SHA256)}
_BY_ALIAS = {alias.lower(): t for t in SIGNAL_TYPES.values() for alias in (t.name, *t.aliases)}


def signal_type(name: str) -> SignalType:
    try:
        return _BY_ALIAS[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(SIGNAL_TYPES))
        raise ValueError(f"unknown signal type {name!r}; known: {known}") from None
