"""Signed C2PA manifests on generated images, on harmless synthetic pictures made in memory."""

from __future__ import annotations

import io
import json
import logging
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import c2pa
import numpy as np
import pytest
from cryptography import x509
from PIL import Image

from waakhond.provenance.certificates import (
    CHAIN_FILE,
    DEVELOPMENT_ROOT_NAME,
    DEVELOPMENT_SIGNER_NAME,
    KEY_FILE,
    README_FILE,
    ROOT_FILE,
    SigningIdentity,
    development_identity,
    identity_from_files,
    new_development_identity,
)
from waakhond.provenance.manifest import (
    DIGITAL_SOURCE_EDIT,
    DIGITAL_SOURCE_GENERATED,
    ManifestReading,
    ManifestSigner,
    read_manifest,
)

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# Where each format keeps its compressed pixels, found by a marker the manifest never precedes.
PIXEL_MARKERS = {"image/jpeg": b"\xff\xda", "image/png": b"IDAT", "image/webp": b"VP8"}


def picture(mime_type: str, size: int = 96) -> bytes:
    """A harmless gradient with a little noise, so compressed sizes are realistic."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=-1)
    pixels = pixels + np.random.default_rng(7).integers(0, 16, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, FORMATS[mime_type])
    return buffer.getvalue()


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return development_identity(tmp_path_factory.mktemp("signing"))


@pytest.fixture(scope="module")
def signer(identity: SigningIdentity) -> Iterator[ManifestSigner]:
    with ManifestSigner(identity) as manifest_signer:
        yield manifest_signer


def leaf_and_root(identity: SigningIdentity) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(identity.chain_pem.encode())


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def manifest_store(data: bytes, mime_type: str) -> dict:
    with c2pa.Reader(mime_type, io.BytesIO(data)) as reader:
        return json.loads(reader.json())


def flip_byte(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


# --- certificates -------------------------------------------------------------------------


def test_the_development_identity_is_made_once_and_then_reloaded_unchanged(tmp_path):
    folder = tmp_path / "not" / "yet" / "there"
    first = development_identity(folder)
    assert development_identity(folder) == first
    assert {ROOT_FILE, CHAIN_FILE, KEY_FILE, README_FILE} <= {p.name for p in folder.iterdir()}
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    assert "NOT FOR PRODUCTION" in (folder / README_FILE).read_text()


def test_the_development_identity_is_labelled_and_shaped_as_c2pa_wants(identity):
    leaf, root = leaf_and_root(identity)
    assert identity.development
    assert common_name(leaf) == DEVELOPMENT_SIGNER_NAME
    assert common_name(root) == DEVELOPMENT_ROOT_NAME
    assert leaf.issuer == root.subject != leaf.subject  # not self-signed
    assert leaf.version is x509.Version.v3
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert x509.ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert identity.chain_pem.endswith(identity.trust_anchors_pem)
    assert identity.algorithm == "ES256"


def test_a_damaged_development_ca_is_replaced_with_a_warning(tmp_path, caplog):
    first = development_identity(tmp_path)
    (tmp_path / KEY_FILE).write_text("not a key")
    with caplog.at_level(logging.WARNING):
        second = development_identity(tmp_path)
    assert "unusable" in caplog.text
    assert second.key_pem != first.key_pem
    assert development_identity(tmp_path) == second


def write_identity(folder: Path, identity: SigningIdentity) -> tuple[Path, Path, Path]:
    paths = folder / "chain.pem", folder / "key.pem", folder / "roots.pem"
    for path, text in zip(paths, (identity.chain_pem, identity.key_pem,
                                  identity.trust_anchors_pem), strict=True):
        path.write_text(text)
    return paths


def test_a_deployment_key_and_chain_load_from_files(tmp_path, identity):
    chain, key, roots = write_identity(tmp_path, identity)
    loaded = identity_from_files(chain, key, roots)
    assert not loaded.development
    assert (loaded.chain_pem, loaded.key_pem) == (identity.chain_pem, identity.key_pem)
    # Without anchors the chain's own root is trusted.
    assert identity_from_files(chain, key).trust_anchors_pem == identity.trust_anchors_pem


def test_a_key_that_does_not_match_the_certificate_is_refused_clearly(tmp_path, identity):
    chain, _, _ = write_identity(tmp_path, identity)
    stranger = tmp_path / "other-key.pem"
    stranger.write_text(new_development_identity().key_pem)
    with pytest.raises(ValueError, match="does not belong to the first certificate"):
        identity_from_files(chain, stranger)


def test_unreadable_or_misordered_files_are_refused_clearly(tmp_path, identity):
    chain, key, _ = write_identity(tmp_path, identity)
    with pytest.raises(ValueError, match="cannot read the private key file"):
        identity_from_files(chain, tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="no readable PEM certificate"):
        identity_from_files(key, key)
    leaf_pem = identity.chain_pem.removesuffix(identity.trust_anchors_pem)
    reversed_chain = tmp_path / "reversed.pem"
    reversed_chain.write_text(identity.trust_anchors_pem + leaf_pem)
    with pytest.raises(ValueError, match="not in order"):
        identity_from_files(reversed_chain, key)


# --- signing and reading ------------------------------------------------------------------


@pytest.mark.parametrize("mime_type", FORMATS)
@pytest.mark.parametrize("edit", [False, True], ids=["new", "edit"])
def test_a_signed_image_reads_back_as_ai_generated(signer, identity, mime_type, edit):
    signed = signer.sign(picture(mime_type), mime_type, edit=edit, record_id="gen-42")
    reading = read_manifest(signed, mime_type, identity.trust_anchors_pem)
    assert reading.present and reading.ai_generated and reading.error is None
    assert reading.digital_source_type == (DIGITAL_SOURCE_EDIT if edit
                                           else DIGITAL_SOURCE_GENERATED)
    assert reading.record_id == "gen-42"
    assert reading.claim_generator == "waakhond"
    assert (reading.validation_state, reading.trusted) == ("Trusted", True)
    without_anchor = read_manifest(signed, mime_type)
    assert (without_anchor.validation_state, without_anchor.trusted) == ("Valid", False)
    assert Image.open(io.BytesIO(signed)).size == (96, 96)


def test_the_actions_say_created_or_opened_then_edited_and_name_the_model(signer):
    def actions(edit: bool) -> list[dict]:
        signed = signer.sign(picture("image/png"), "image/png", edit=edit, record_id="r",
                             model="example-diffusion-1")
        store = manifest_store(signed, "image/png")
        manifest = store["manifests"][store["active_manifest"]]
        return next(a for a in manifest["assertions"]
                    if a["label"].startswith("c2pa.actions"))["data"]["actions"]

    assert [a["action"] for a in actions(edit=False)] == ["c2pa.created"]
    assert [a["action"] for a in actions(edit=True)] == ["c2pa.opened", "c2pa.edited"]
    assert actions(edit=True)[1]["softwareAgent"]["name"] == "example-diffusion-1"


def test_an_edit_carries_no_thumbnail_or_copy_of_any_image(signer):
    unsigned = picture("image/jpeg", size=256)
    signed = signer.sign(unsigned, "image/jpeg", edit=True, record_id="r")
    store = manifest_store(signed, "image/jpeg")
    manifest = store["manifests"][store["active_manifest"]]
    assert "thumbnail" not in json.dumps(store).lower()
    assert [set(ingredient) for ingredient in manifest["ingredients"]] == [
        {"title", "relationship", "label"}]
    assert len(signed) - len(unsigned) < 20_000


@pytest.mark.parametrize("mime_type", FORMATS)
def test_changing_pixels_after_signing_breaks_validation(signer, identity, mime_type):
    signed = signer.sign(picture(mime_type), mime_type, edit=False, record_id="r")
    offset = signed.rindex(PIXEL_MARKERS[mime_type]) + 32
    reading = read_manifest(flip_byte(signed, offset), mime_type, identity.trust_anchors_pem)
    assert reading.present and reading.validation_state == "Invalid" and not reading.trusted


@pytest.mark.parametrize("mime_type", FORMATS)
def test_an_image_without_a_manifest_reads_as_absent(mime_type):
    assert read_manifest(picture(mime_type), mime_type) == ManifestReading(present=False)


@pytest.mark.parametrize("data", [b"", b"garbage" * 50, b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_garbage_never_raises(data):
    reading = read_manifest(data, "image/png")
    assert not reading.present and reading.error
    assert reading.to_dict()["record_id"] is None


def test_a_damaged_manifest_is_reported_not_raised(signer):
    signed = signer.sign(picture("image/jpeg"), "image/jpeg", edit=False, record_id="r")
    damaged = flip_byte(signed, signed.index(b"jumb") + 400)
    reading = read_manifest(damaged, "image/jpeg")
    assert reading.present and reading.error and not reading.trusted


def test_only_jpeg_png_and_webp_are_signed(signer):
    with pytest.raises(ValueError, match="image/gif"):
        signer.sign(b"GIF89a", "image/gif", edit=False, record_id="r")


def test_one_signer_serves_several_threads_at_once(signer, identity):
    image = picture("image/jpeg")

    def round_trip(number: int) -> str | None:
        signed = signer.sign(image, "image/jpeg", edit=number % 2 == 0, record_id=f"r{number}")
        return read_manifest(signed, "image/jpeg", identity.trust_anchors_pem).record_id

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(round_trip, range(24))) == [f"r{n}" for n in range(24)]
