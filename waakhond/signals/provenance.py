"""C2PA provenance: does the image carry a manifest, and does it declare AI generation?

A manifest is a claim by whoever signed it, not proof; the policy only uses it to pick the
"deepfake" DSA keywords, never to allow something it would otherwise restrict.
"""

from __future__ import annotations

from waakhond.intake import DecodedImage
from waakhond.provenance.manifest import read_manifest
from waakhond.signals.base import Provenance, SignalSet, package_version


class C2paDetector:
    name = "provenance"
    field = "provenance"

    def __init__(self) -> None:
        self.version = f"c2pa-python-{package_version('c2pa-python')}"

    def run(self, image: DecodedImage, earlier: SignalSet) -> Provenance:
        reading = read_manifest(image.data, image.info.mime_type)
        return Provenance(
            manifest_present=reading.present,
            ai_generated=reading.ai_generated,
            digital_source_type=reading.digital_source_type,
            claim_generator=reading.claim_generator,
            validation_state=reading.validation_state,
            error=reading.error,
        )
