"""Faces looked up in the registry, in memory, kept current from the change log.

A face is identified as an enrolled person only when it is within REGISTRY_MATCH of one of
their photos AND clearly nearer to them than to anybody else enrolled (the nearest other
enrolled face is at least 1/MARGIN times farther). The threshold alone does not scale: in a
registry of a million faces almost every stranger has some look-alike within it, while a
margin over the next face does not depend on the registry's size (docs/benchmarks.md,
"Identification at registry scale"). Enrolments whose photos nearest the face are within
SAME_FACE of each other count as one face: the same person enrolled twice (or an enrolment
copied to mask the first) is not "somebody else" and hides nothing; the strictest of their
scopes applies.

The matcher holds every enrolled vector in a FaceIndex and, beside it, only which enrolment
each vector belongs to and what that enrolment's scope in force is. It follows the registry's
change log (every half second, and at once after a change made in this process), so an
enrolment, a scope change or a deletion made anywhere applies within a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.consent.index import FaceIndex, Hits
from waakhond.consent.registry import Scope, effective_scope
from waakhond.signals.base import Identities, RegistryMatch, RegistryMatches
from waakhond.signals.identity import REGISTRY_MATCH
from waakhond.store import Database
from waakhond.store.models import ConsentEnrolment, FaceEmbeddingRow, RegistryChange

REFRESH_SECONDS = 0.5
MARGIN = 0.9
SAME_FACE = 0.35
# Enrolled photos looked at per face: up to 10 per enrolment, so room for a few enrolments.
NEIGHBOURS = 32


@dataclass(frozen=True)
class Identified:
    enrolments: frozenset[int]  # the face's enrolment, with any that are the same face
    distance: float


def identify(hits: Hits, enrolment_of: Mapping[int, int], index: FaceIndex,
             threshold: float = REGISTRY_MATCH) -> Identified | None:
    """Whom the face with these nearest enrolled photos (FaceIndex.search at radius
    threshold / MARGIN, k NEIGHBOURS) is, if it is clearly one enrolled face."""
    # Without another enrolment among the hits, the next is beyond the last hit, or the radius.
    next_face = hits[-1][1] if len(hits) == NEIGHBOURS else threshold / MARGIN
    hits = [hit for hit in hits if hit[0] in enrolment_of]  # others were just removed
    if not hits or hits[0][1] >= threshold:
        return None
    (first, nearest), face = hits[0], {enrolment_of[hits[0][0]]}
    others = [hit for hit in hits if enrolment_of[hit[0]] not in face]
    if others:
        vectors = index.vectors([first] + [vector_id for vector_id, _ in others])
        apart = np.linalg.norm(vectors[1:] - vectors[0], axis=1)
        for (vector_id, distance), gap in zip(others, apart, strict=True):
            if enrolment_of[vector_id] in face:
                continue
            if gap < SAME_FACE:
                face.add(enrolment_of[vector_id])
                continue
            if np.isfinite(gap):  # NaN: removed since the search
                next_face = distance
                break
    return Identified(frozenset(face), nearest) if nearest < MARGIN * next_face else None


class RegistryMatcher:
    def __init__(self, db: Database, threshold: float = REGISTRY_MATCH) -> None:
        self.db = db
        self.threshold = threshold
        self.index = FaceIndex()
        self._lock = threading.Lock()
        self._seen = 0  # the last change applied
        self._refreshed = float("-inf")
        self._enrolment_of: dict[int, int] = {}  # vector id -> enrolment id
        self._vectors_of: dict[int, list[int]] = {}  # enrolment id -> vector ids
        self._scope_of: dict[int, str] = {}  # enrolment id -> scope in force

    def refresh(self) -> None:
        """Reload every enrolment changed since the last refresh."""
        with self._lock, self.db.session() as session:
            changes = session.execute(select(RegistryChange.id, RegistryChange.enrolment_id)
                                      .where(RegistryChange.id > self._seen)
                                      .order_by(RegistryChange.id)).all()
            for enrolment_id in dict.fromkeys(change.enrolment_id for change in changes):
                self._forget(enrolment_id)
                self._load(session, enrolment_id)
            if changes:  # only once applied: a failed refresh is retried from here
                self._seen = changes[-1].id
            self._refreshed = time.monotonic()

    def _forget(self, enrolment_id: int) -> None:
        vector_ids = self._vectors_of.pop(enrolment_id, [])
        self.index.remove(vector_ids)
        for vector_id in vector_ids:
            self._enrolment_of.pop(vector_id, None)
        self._scope_of.pop(enrolment_id, None)

    def _load(self, session: Session, enrolment_id: int) -> None:
        enrolment = session.get(ConsentEnrolment, enrolment_id)
        if enrolment is None or enrolment.status != "active":
            return
        rows: list[FaceEmbeddingRow] = list(enrolment.embeddings)
        if not rows:
            return
        ids = [row.id for row in rows]
        self.index.add(ids, np.stack([np.frombuffer(row.vector, dtype=np.float32)
                                      for row in rows]))
        self._vectors_of[enrolment_id] = ids
        self._enrolment_of.update(dict.fromkeys(ids, enrolment_id))
        self._scope_of[enrolment_id] = effective_scope(enrolment.scope,
                                                       enrolment.verification).value

    def match(self, identities: Identities) -> RegistryMatches:
        if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
            self.refresh()
        if not identities.embeddings:
            return RegistryMatches([])
        queries = np.stack([embedding.array() for embedding in identities.embeddings])
        found = self.index.search(queries, self.threshold / MARGIN, NEIGHBOURS)
        matches = []
        for embedding, hits in zip(identities.embeddings, found, strict=True):
            identified = identify(hits, self._enrolment_of, self.index, self.threshold)
            if identified is None:
                continue
            scopes = [self._scope_of[enrolment] for enrolment in identified.enrolments
                      if enrolment in self._scope_of]  # not there: deleted meanwhile
            if scopes:
                matches.append(RegistryMatch(embedding.face, _strictest(scopes),
                                             round(identified.distance, 3)))
        return RegistryMatches(matches)


def _strictest(scopes: list[str]) -> str:
    """Scopes are listed mildest first; each includes what the milder ones forbid."""
    return max(scopes, key=lambda scope: list(Scope).index(Scope(scope)))
