"""Faces looked up in the registry, in memory, kept current from the change log.

The matcher holds every enrolled vector in a FaceIndex and, beside it, only which enrolment
each vector belongs to and what that enrolment's scope in force is. It follows the registry's
change log (every half second, and at once after a change made in this process), so an
enrolment, a scope change or a deletion made anywhere applies within a second.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.consent.index import FaceIndex
from waakhond.consent.registry import effective_scope
from waakhond.signals.base import Identities, RegistryMatch, RegistryMatches
from waakhond.signals.identity import REGISTRY_MATCH
from waakhond.store import Database
from waakhond.store.models import ConsentEnrolment, FaceEmbeddingRow, RegistryChange

REFRESH_SECONDS = 0.5


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
        found = self.index.search(queries, self.threshold)
        matches = []
        for embedding, hit in zip(identities.embeddings, found, strict=True):
            scope = self._scope_of.get(self._enrolment_of.get(hit[0], -1)) if hit else None
            if hit is not None and scope is not None:
                matches.append(RegistryMatch(embedding.face, scope, round(hit[1], 3)))
        return RegistryMatches(matches)
