"""Sign a harmless synthetic JPEG with a C2PA manifest from a throwaway development CA.

The manifest is written here rather than by waakhond.provenance.ManifestSigner, so the reader
tests also see a manifest that some other tool made.
"""

from __future__ import annotations

import io
import json

import c2pa

from waakhond.provenance.certificates import new_development_identity

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def sign_jpeg(jpeg: bytes) -> bytes:
    """The same JPEG with an embedded, signed manifest declaring it AI-generated."""
    identity = new_development_identity()
    info = c2pa.C2paSignerInfo(alg=c2pa.C2paSigningAlg.ES256,
                               sign_cert=identity.chain_pem.encode(),
                               private_key=identity.key_pem.encode(),
                               ta_url=None)
    manifest = {
        "claim_generator_info": [{"name": "waakhond-tests", "version": "1"}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": AI_SOURCE}]}}],
    }
    output = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), output)
    return output.getvalue()
