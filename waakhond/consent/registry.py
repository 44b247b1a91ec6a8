"""The opt-out face registry: people say what they do not consent to, by their face.

A person (or a parent, guardian or lawyer for them, or a public figure's office) enrols one
to ten photos of the face with a scope. Only identity vectors are kept: each photo is decoded,
its one face found and embedded, and the photo dropped. Enrolment answers with a reference and
a secret (only its hash is stored): with them the person checks, changes or deletes the
enrolment, and deleting purges every vector at once (GDPR Art. 17), leaving a tombstone with
no personal data. Every change goes into the change log that running indexes follow.

Scopes, mildest first. ``no_sexual``: no sexual or suggestive images showing me. ``no_edits``:
that, and no AI edits of photos of me. A stricter scope also restricts legitimate uses of a
face, so it takes effect only once the enrolment is verified (a person checks identity or
mandate through the verification hook); until then it acts as ``no_sexual``, which protects
without restricting anything lawful.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.audit import AuditLog
from waakhond.store import Database
from waakhond.store.models import ConsentEnrolment, FaceEmbeddingRow, RegistryChange, iso

MAX_PHOTOS = 10
E = TypeVar("E", bound=StrEnum)


class Scope(StrEnum):
    NO_SEXUAL = "no_sexual"
    NO_EDITS = "no_edits"


class EnrolledBy(StrEnum):
    SELF = "self"
    REPRESENTATIVE = "representative"  # a parent, guardian or lawyer
    PUBLIC_FIGURE_OFFICE = "public_figure_office"


class Verification(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    REJECTED = "rejected"


class RegistryError(ValueError):
    """The enrolment cannot be made or changed as asked; the message says why."""


def effective_scope(scope: str, verification: str) -> Scope:
    """What is enforced: a stricter scope waits for verification."""
    return Scope(scope) if verification == Verification.VERIFIED else Scope.NO_SEXUAL


@dataclass(frozen=True)
class Enrolled:
    reference: str
    secret: str  # shown once
    faces: int
    scope: Scope
    in_force: Scope


# Turns one photo into the identity vectors of the faces in it (waakhond.consent.photos).
PhotoEmbedder = Callable[[bytes], list[np.ndarray]]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _log(session: Session, enrolment: ConsentEnrolment) -> None:
    session.flush()
    session.add(RegistryChange(enrolment_id=enrolment.id))


class Registry:
    """``on_change`` runs after every committed change (this process's matcher refreshes at
    once); ``request_verification`` is the identity-verification hook, given the reference of
    each new enrolment (its answer comes back through ``set_verification``)."""

    def __init__(self, db: Database, embed_photo: PhotoEmbedder,
                 on_change: Callable[[], None] | None = None,
                 request_verification: Callable[[str], None] | None = None) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.embed_photo = embed_photo
        self.on_change = on_change or (lambda: None)
        self.request_verification = request_verification or (lambda _reference: None)

    def enrol(self, photos: Sequence[bytes], scope: str, enrolled_by: str) -> Enrolled:
        chosen, by = _parse(Scope, scope, "scope"), _parse(EnrolledBy, enrolled_by, "enrolled_by")
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise RegistryError(f"send 1 to {MAX_PHOTOS} photos of the face")
        vectors = [self._one_face(number, photo) for number, photo in enumerate(photos, 1)]
        reference, secret = f"reg_{secrets.token_hex(10)}", secrets.token_urlsafe(24)
        with self.db.session() as session:
            enrolment = ConsentEnrolment(reference=reference, secret_sha256=_digest(secret),
                                         scope=chosen.value, enrolled_by=by.value,
                                         verification=Verification.UNVERIFIED.value)
            enrolment.embeddings = [FaceEmbeddingRow(vector=v.astype(np.float32).tobytes())
                                    for v in vectors]
            session.add(enrolment)
            _log(session, enrolment)
        self.on_change()
        self.audit.append("enrollee", "consent.enrol", reference,
                          {"scope": chosen.value, "faces": len(vectors)})
        self.request_verification(reference)
        return Enrolled(reference, secret, len(vectors), chosen,
                        effective_scope(chosen, Verification.UNVERIFIED))

    def _one_face(self, number: int, photo: bytes) -> np.ndarray:
        faces = self.embed_photo(photo)
        if len(faces) != 1:
            found = "no face" if not faces else f"{len(faces)} faces"
            raise RegistryError(f"photo {number}: found {found}; send photos with exactly one "
                                "face, clearly visible")
        return faces[0]

    def status(self, reference: str, secret: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            enrolment = _owned(session, reference, secret)
            return _describe(enrolment) if enrolment else None

    def change_scope(self, reference: str, secret: str, scope: str) -> dict[str, Any] | None:
        chosen = _parse(Scope, scope, "scope")
        return self._update(lambda session: _owned(session, reference, secret),
                            lambda enrolment: setattr(enrolment, "scope", chosen.value))

    def delete(self, reference: str, secret: str) -> bool:
        """Purge every vector of the enrolment at once; running indexes drop them on their
        next refresh (within a second) and this process's index at once."""
        with self.db.session() as session:
            enrolment = _owned(session, reference, secret)
            if enrolment is None:
                return False
            enrolment.embeddings.clear()
            enrolment.status, enrolment.changed_at = "deleted", datetime.now(UTC)
            enrolment.scope = enrolment.enrolled_by = ""
            _log(session, enrolment)
        self.on_change()
        self.audit.append("enrollee", "consent.delete", reference, {})
        return True

    def set_verification(self, reference: str, verification: str,
                         by: str = "verification hook") -> dict[str, Any] | None:
        """The verification hook's answer (or a person's, by hand)."""
        result = _parse(Verification, verification, "verification")
        described = self._update(
            lambda session: session.scalar(select(ConsentEnrolment).where(
                ConsentEnrolment.reference == reference, ConsentEnrolment.status == "active")),
            lambda enrolment: setattr(enrolment, "verification", result.value))
        if described is not None:
            self.audit.append(by, "consent.verification", reference, {"result": result.value})
        return described

    def _update(self, find: Callable[[Session], ConsentEnrolment | None],
                change: Callable[[ConsentEnrolment], None]) -> dict[str, Any] | None:
        """Change an enrolment found by ``find`` and log the change for running indexes."""
        with self.db.session() as session:
            enrolment = find(session)
            if enrolment is None:
                return None
            change(enrolment)
            enrolment.changed_at = datetime.now(UTC)
            _log(session, enrolment)
            described = _describe(enrolment)
        self.on_change()
        return described


def _parse(kind: type[E], value: str, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise RegistryError(f"{name} must be one of: {', '.join(kind)}") from None


def _owned(session: Session, reference: str, secret: str) -> ConsentEnrolment | None:
    """The enrolment, if the secret is its own; None for a wrong reference or secret alike,
    so nobody can find out who is enrolled."""
    enrolment = session.scalar(select(ConsentEnrolment).where(
        ConsentEnrolment.reference == reference, ConsentEnrolment.status == "active"))
    if enrolment is None or not hmac.compare_digest(enrolment.secret_sha256, _digest(secret)):
        return None
    return enrolment


def _describe(enrolment: ConsentEnrolment) -> dict[str, Any]:
    return {"reference": enrolment.reference, "scope": enrolment.scope,
            "in_force": effective_scope(enrolment.scope, enrolment.verification).value,
            "enrolled_by": enrolment.enrolled_by, "verification": enrolment.verification,
            "faces": len(enrolment.embeddings), "created_at": iso(enrolment.created_at),
            "changed_at": iso(enrolment.changed_at)}
