"""Who signs our C2PA manifests: a deployment's own key and chain, or a development CA.

C2PA readers reject self-signed end-entity certificates and want X.509 v3 with a critical
KeyUsage digitalSignature and a non-empty extended key usage (shared/docs/provenance.md), so the
development identity is a private root that issues one signer. The root's private key is thrown
away once the signer is issued: nothing else can ever be issued under that root.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import pairwise
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

DEVELOPMENT_ROOT_NAME = "waakhond DEVELOPMENT CA - not for production"
DEVELOPMENT_SIGNER_NAME = "waakhond DEVELOPMENT signer - not for production"
ROOT_FILE = "dev-ca-root.pem"
CHAIN_FILE = "dev-signer-chain.pem"
KEY_FILE = "dev-signer-key.pem"
README_FILE = "README.txt"
_ROOT_VALIDITY = dt.timedelta(days=3652)
_SIGNER_VALIDITY = dt.timedelta(days=730)
# A clock a little behind ours must not see a fresh certificate as "not yet valid".
_BACKDATE = dt.timedelta(hours=1)
# C2PA algorithm names (as c2pa.C2paSigningAlg spells them) for the elliptic curves it allows.
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

_README = f"""\
DEVELOPMENT SIGNING CA - NOT FOR PRODUCTION

waakhond generated these files on first run so that it can sign C2PA manifests ("this image
was made by AI") during development and testing. Nobody outside this machine trusts them.

  {ROOT_FILE}       the root certificate ("{DEVELOPMENT_ROOT_NAME}");
                        give it to a C2PA reader as a trust anchor to see "Trusted".
  {CHAIN_FILE}  the signer certificate, then the root.
  {KEY_FILE}    the signer's private key. Keep it secret.

The root's private key was discarded after issuing the signer. Delete this folder to make a new
CA. In production, configure the deployment's own key and certificate chain instead.
"""


@dataclass(frozen=True)
class SigningIdentity:
    """A signing key with its certificate chain (leaf first) and the roots readers should trust."""

    chain_pem: str
    key_pem: str = field(repr=False)
    trust_anchors_pem: str | None
    development: bool

    @cached_property
    def algorithm(self) -> str:
        """The C2PA signing algorithm for this key, e.g. "ES256" (a c2pa.C2paSigningAlg name)."""
        return _algorithm_for(_load_private_key(self.key_pem, "the private key"))


def development_identity(folder: Path) -> SigningIdentity:
    """The development CA's signer kept in ``folder``, created there on first use."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Several workers may start at once; without the lock each could write its own key.
    with _exclusive_lock(folder / ".lock"):
        if any((folder / name).exists() for name in (ROOT_FILE, CHAIN_FILE, KEY_FILE)):
            try:
                return _load_development_identity(folder)
            except ValueError as exc:
                log.warning("The development signing CA in %s is unusable (%s); "
                            "replacing it with a new one", folder, exc)
        identity = new_development_identity()
        _write_development_identity(folder, identity)
        log.warning("Created a DEVELOPMENT C2PA signing CA in %s: manifests signed with it are "
                    "not trusted anywhere else. Configure a real key for production.", folder)
        return identity


def new_development_identity() -> SigningIdentity:
    """A fresh development root and signer, in memory only (also used by the tests)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    signer_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(DEVELOPMENT_ROOT_NAME)
    root = _issue(root_name, root_key.public_key(), root_name, root_key, _ROOT_VALIDITY, ca=True)
    signer = _issue(_name(DEVELOPMENT_SIGNER_NAME), signer_key.public_key(), root_name, root_key,
                    _SIGNER_VALIDITY, ca=False)
    key_pem = signer_key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()
    return SigningIdentity(chain_pem=_pem(signer) + _pem(root), key_pem=key_pem,
                           trust_anchors_pem=_pem(root), development=True)


def identity_from_files(cert_chain_path: Path, key_path: Path,
                        trust_anchors_path: Path | None = None) -> SigningIdentity:
    """A deployment's own key and chain (leaf first). Raises ValueError saying what is wrong.

    Without ``trust_anchors_path`` the last certificate of a multi-certificate chain is the
    anchor, so a chain that ends in its root verifies as "Trusted" with nothing else configured.
    """
    chain_pem = _read_text(cert_chain_path, "certificate chain")
    key_pem = _read_text(key_path, "private key")
    chain = _load_certificates(chain_pem, f"certificate chain {cert_chain_path}")
    key = _load_private_key(key_pem, f"private key {key_path}")
    _algorithm_for(key)  # a key C2PA cannot use fails here, not at the first signature
    _check_chain(chain, cert_chain_path)
    if _public_der(key.public_key()) != _public_der(chain[0].public_key()):
        raise ValueError(f"the private key {key_path} does not belong to the first certificate "
                         f"in {cert_chain_path} ({chain[0].subject.rfc4514_string()})")
    return SigningIdentity(chain_pem=chain_pem, key_pem=key_pem,
                           trust_anchors_pem=_trust_anchors(trust_anchors_path, chain),
                           development=False)


def _trust_anchors(path: Path | None, chain: list[x509.Certificate]) -> str | None:
    if path is None:
        return _pem(chain[-1]) if len(chain) > 1 else None
    anchors_pem = _read_text(path, "trust anchors")
    _load_certificates(anchors_pem, f"trust anchors {path}")
    return anchors_pem


def _load_development_identity(folder: Path) -> SigningIdentity:
    identity = identity_from_files(folder / CHAIN_FILE, folder / KEY_FILE, folder / ROOT_FILE)
    return replace(identity, development=True)


def _write_development_identity(folder: Path, identity: SigningIdentity) -> None:
    assert identity.trust_anchors_pem is not None
    _write_atomically(folder / ROOT_FILE, identity.trust_anchors_pem, secret=False)
    _write_atomically(folder / CHAIN_FILE, identity.chain_pem, secret=False)
    _write_atomically(folder / KEY_FILE, identity.key_pem, secret=True)
    _write_atomically(folder / README_FILE, _README, secret=False)


def _check_chain(chain: list[x509.Certificate], path: Path) -> None:
    leaf = chain[0]
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ValueError(f"the signing certificate in {path} is valid only from "
                         f"{leaf.not_valid_before_utc:%Y-%m-%d} to "
                         f"{leaf.not_valid_after_utc:%Y-%m-%d}")
    if len(chain) == 1 and leaf.issuer == leaf.subject:
        raise ValueError(f"the signing certificate in {path} is self-signed; C2PA readers reject "
                         "that: have a CA issue it and put the CA after it in the chain")
    for subject, issuer in pairwise(chain):
        try:
            subject.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"the certificate chain in {path} is not in order (leaf first, then "
                             f"each issuer): {subject.subject.rfc4514_string()} is not issued by "
                             f"{issuer.subject.rfc4514_string()}") from exc
        except InvalidSignature as exc:  # the right name, but a different key signed it
            raise ValueError(f"the certificate chain in {path} is broken: the signature on "
                             f"{subject.subject.rfc4514_string()} does not verify") from exc


def _algorithm_for(key: PrivateKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_ALGORITHMS:
        return _CURVE_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS256"  # C2PA allows RSA only with PSS padding
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ED25519"
    raise ValueError(f"C2PA cannot sign with a {type(key).__name__} key; use ECDSA P-256, "
                     "P-384 or P-521, RSA (PSS) or Ed25519")


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc}") from exc


def _load_certificates(pem: str, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValueError(f"the {what} holds no readable PEM certificate: {exc}") from exc


def _load_private_key(pem: str, what: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError as exc:  # raised for a key that needs a password
        raise ValueError(f"the {what} is encrypted; give it unencrypted (PKCS#8 PEM)") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"the {what} is not a readable PEM private key: {exc}") from exc


def _issue(subject: x509.Name, public_key: CertificatePublicKeyTypes, issuer: x509.Name,
           issuer_key: CertificateIssuerPrivateKeyTypes, validity: dt.timedelta,
           *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=not ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    if not ca:
        # C2PA wants a non-empty EKU on the signer, and never anyExtendedKeyUsage.
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "waakhond")])


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_atomically(path: Path, text: str, *, secret: bool) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o600 if secret else 0o644)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
