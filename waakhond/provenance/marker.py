"""Marking and verifying: the two layers the EU Code of Practice on AI-generated content asks
for, applied to every image the gateway lets through.

1. an invisible watermark in the pixels (survives re-encoding and resizing, and a stripped
   manifest), carrying a 48-bit id of the generation record;
2. a signed C2PA manifest (trainedAlgorithmicMedia for new images,
   compositeWithTrainedAlgorithmicMedia for edits) naming the generation record.

The watermark goes in first: signing covers the final pixels. A manifest the generator put on
its image is kept, as an ingredient of ours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from waakhond.config import GatewaySettings
from waakhond.intake import DecodedImage
from waakhond.provenance.certificates import (
    SigningIdentity,
    development_identity,
    identity_from_files,
)
from waakhond.provenance.manifest import (
    SIGNABLE_MIME_TYPES,
    ManifestReading,
    ManifestSigner,
    read_manifest,
)
from waakhond.provenance.watermark import WatermarkReading, embed_watermark, read_watermark

GENERATOR = "waakhond"
# Formats C2PA can carry a manifest in; anything else is re-encoded as PNG.
_SAVE = {"image/jpeg": ("JPEG", {"quality": 92}), "image/png": ("PNG", {"compress_level": 1}),
         "image/webp": ("WEBP", {"quality": 92})}


@dataclass(frozen=True)
class MarkedImage:
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class ProvenanceReport:
    manifest: ManifestReading
    watermark: WatermarkReading


class Marker:
    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity
        self._signer = ManifestSigner(identity)

    @classmethod
    def from_settings(cls, settings: GatewaySettings, data: Path) -> Marker:
        if settings.c2pa_cert_chain or settings.c2pa_private_key:
            return cls(identity_from_files(settings.c2pa_cert_chain, settings.c2pa_private_key))
        return cls(development_identity(data / "dev-ca"))

    def mark(self, image: DecodedImage, *, edit: bool, record_id: str, mark_id: int,
             model: str | None = None) -> MarkedImage:
        """Watermark the first frame, re-encode it in the generator's format (PNG for
        formats C2PA cannot carry), and sign it."""
        fmt, options = _SAVE.get(image.info.mime_type, _SAVE["image/png"])
        watermarked = embed_watermark(Image.fromarray(image.first.rgb), mark_id)
        encoded = io.BytesIO()
        watermarked.save(encoded, format=fmt, **options)
        mime_type = Image.MIME[fmt]
        signed = self._signer.sign(encoded.getvalue(), mime_type, edit=edit,
                                   record_id=record_id, generator=GENERATOR, model=model,
                                   generator_output=self._earlier_manifest(image))
        return MarkedImage(signed, mime_type)

    @staticmethod
    def _earlier_manifest(image: DecodedImage) -> tuple[bytes, str] | None:
        """The generator's own image when it carries a manifest, to keep as an ingredient."""
        mime_type = image.info.mime_type
        if mime_type in SIGNABLE_MIME_TYPES and read_manifest(image.data, mime_type).present:
            return image.data, mime_type
        return None

    def verify(self, image: DecodedImage) -> ProvenanceReport:
        """Read both marks from an image that passed intake (limits, decoding)."""
        manifest = read_manifest(image.data, image.info.mime_type,
                                 self.identity.trust_anchors_pem)
        watermark = read_watermark(Image.fromarray(image.first.rgb))
        return ProvenanceReport(manifest, watermark)
