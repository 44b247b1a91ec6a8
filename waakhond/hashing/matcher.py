"""Matching content hashes against every bank: the in-memory PDQ index plus exact look-ups.

The index is built once from the database, then kept current by polling the change log at
most every REFRESH_SECONDS: a hash added or withdrawn in any process (the CLI, the API, an
exchange fetch) matches, or stops matching, within about a second, with no rebuild.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from waakhond.hashing.banks import (
    OWN_REMOVALS_BANK,
    BankInfo,
    BankKind,
    BankService,
    EntryInfo,
    EntryInput,
)
from waakhond.hashing.pdq_index import PdqIndex, words_from_hex
from waakhond.hashing.signal_types import MAX_DISTANCE, MIN_PDQ_QUALITY
from waakhond.signals.base import BankMatch, BankMatches, Hashes

REFRESH_SECONDS = 0.5


@dataclass
class FloodGuard:
    """Pauses an entry that suddenly matches far more than it usually does.

    A list entry that matches hundreds of times an hour is more often a mistake (a meme, a
    logo, a blank frame that slipped in) than a wave of abuse; pausing it and flagging it for
    a person stops it from blocking ordinary content wholesale.
    """

    window_seconds: float = 3600.0
    floor: int = 100  # matches per window always allowed
    factor: float = 10.0  # ... or this many times the previous window
    _counts: dict[int, tuple[float, int, int]] = field(default_factory=dict)

    def count(self, entry_id: int, now: float) -> bool:
        """Count a match; True when the entry floods."""
        start, current, previous = self._counts.get(entry_id, (now, 0, 0))
        if now - start >= self.window_seconds:
            start, current, previous = now, 0, current
        current += 1
        self._counts[entry_id] = (start, current, previous)
        return current > max(self.floor, self.factor * previous)

    def forget(self, entry_id: int) -> None:
        self._counts.pop(entry_id, None)


class HashMatcher:
    def __init__(self, banks: BankService, flood: FloodGuard | None = None) -> None:
        self.banks = banks
        self.flood = flood or FloodGuard()
        self._lock = threading.Lock()
        self._seen = banks.last_change()  # before loading: later changes are replayed
        ids, hexes = [], []
        for rows in banks.matchable_pdq():
            ids += [entry_id for entry_id, _ in rows]
            hexes += [value for _, value in rows]
        self.index = PdqIndex(np.array(ids, np.int64), words_from_hex(hexes)) if ids \
            else PdqIndex()
        self._refreshed = 0.0
        self._bank_info: dict[str, BankInfo] = {}
        self.refresh()

    def refresh(self) -> None:
        """Apply every change since the last refresh to the index."""
        with self._lock:
            changes = self.banks.changes_since(self._seen)
            if changes:
                last = {c.entry_id: c.matchable for c in changes if c.signal_type == "pdq"}
                self.index.remove(list(last))
                self._add([entry_id for entry_id, matchable in last.items() if matchable])
                for change in changes:
                    if change.matchable:  # released or restored: a fresh start
                        self.flood.forget(change.entry_id)
                # Only once applied: a refresh that fails is retried from the same place.
                self._seen = changes[-1].id
            self._bank_info = {info.name: info for info in self.banks.list(with_counts=False)}
            self._refreshed = time.monotonic()

    def _bank(self, name: str) -> BankInfo:
        """A bank's settings; a bank created since the last refresh triggers one."""
        if name not in self._bank_info:
            self.refresh()
        return self._bank_info[name]

    def _add(self, entry_ids: list[int]) -> None:
        live = [e for e in self.banks.lookup(entry_ids).values()
                if e.status == "active" and not e.quarantined]
        if live:
            self.index.add(np.array([e.id for e in live], np.int64),
                           words_from_hex([e.value for e in live]))

    def match(self, hashes: Hashes) -> BankMatches:
        if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
            self.refresh()
        found = self._pdq(hashes) | self._exact(hashes)
        entries = self.banks.lookup(found)
        candidates = [self._as_match(entries[i], d) for i, d in found.items() if i in entries]
        matches = [m for m in candidates if m.distance <= self._bank(m.bank).match_distance]
        return self._judge(matches, hashes)

    def _pdq(self, hashes: Hashes) -> dict[int, int]:
        # The 8 rotations and flips of the query, so a rotated or mirrored copy still matches,
        # and of the picture inside its border, if it has one.
        plain = hashes.pdq_dihedral or (hashes.pdq,)
        hexes = [*(plain if hashes.pdq_quality >= MIN_PDQ_QUALITY else ()),
                 *hashes.pdq_inside_border]
        if not hexes:
            return {}
        queries = words_from_hex(hexes)
        best: dict[int, int] = {}
        for match in self.index.search(queries, MAX_DISTANCE):
            best[match.entry_id] = min(match.distance, best.get(match.entry_id, 256))
        return best

    def _exact(self, hashes: Hashes) -> dict[int, int]:
        ids = self.banks.exact_ids({"md5": hashes.md5, "sha256": hashes.sha256})
        return dict.fromkeys(ids, 0)

    def _as_match(self, entry: EntryInfo, distance: int) -> BankMatch:
        return BankMatch(entry.bank, entry.kind, entry.id, entry.signal_type, entry.value,
                         distance, entry.metadata, entry.note)

    def _judge(self, matches: list[BankMatch], hashes: Hashes) -> BankMatches:
        if any(m.kind == BankKind.NEGATIVE for m in matches):
            return BankMatches((), tuple(matches))
        # Roll-out: the same content always falls on the same side of a bank's ratio.
        share = int(hashes.sha256[:8], 16) / 2**32  # 0 <= share < 1
        active = [m for m in matches if share < self._bank(m.bank).enabled_ratio]
        suppressed = [m for m in matches if m not in active]
        now = time.monotonic()
        flooding = tuple(m.entry_id for m in active if self.flood.count(m.entry_id, now))
        for entry_id in flooding:
            self.banks.quarantine(entry_id, "paused: matched far more than usual (flood)")
        return BankMatches(tuple(active), tuple(suppressed), flooding)

    def record_removal(self, hashes: Hashes, reason: str) -> None:
        """Content blocked as CSAM or NCII: keep its hashes so a re-upload is caught."""
        self.banks.ensure(OWN_REMOVALS_BANK, BankKind.OWN_REMOVALS, "waakhond decisions")
        entries = [EntryInput("md5", hashes.md5, metadata={"reason": reason}),
                   EntryInput("sha256", hashes.sha256, metadata={"reason": reason})]
        if hashes.pdq_quality >= MIN_PDQ_QUALITY:
            entries.append(EntryInput("pdq", hashes.pdq, metadata={"reason": reason}))
        if hashes.pdq_inside_border:  # so the original without the border is caught too
            entries.append(EntryInput("pdq", hashes.pdq_inside_border[0],
                                      metadata={"reason": reason, "hashed": "inside border"}))
        self.banks.add(OWN_REMOVALS_BANK, entries)
