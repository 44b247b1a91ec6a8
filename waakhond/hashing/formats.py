"""Hash-list files in and out.

- ``csv``: a header row, then ``signal_type,value[,status][,note][,metadata]`` (metadata as a
  JSON object). What ``bank export`` writes.
- ``te``: python-threatexchange's local-file format (``LocalFileSignalExchangeAPI``): one
  ``<signal type> <hash>`` per line, or a bare hash when the signal type is given.
- ``stopncii``: a StopNCII FetchHashes response (``{"hashRecords": [...]}``), statuses and all.

A file is read whole and checked before anything is stored: one bad line rejects the file,
and the error names every bad line (up to MAX_REPORTED), so nothing is half-imported.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import dacite
from threatexchange.exchanges.clients.stopncii.api import StopNCIIHashRecord

from waakhond.errors import InputError
from waakhond.hashing.banks import EntryInfo, EntryInput
from waakhond.hashing.exchange import EntryStatus, stopncii_update
from waakhond.hashing.signal_types import signal_type

FORMATS = ("csv", "te", "stopncii")
MAX_REPORTED = 20
_CSV_COLUMNS = ("signal_type", "value", "status", "note", "metadata")


class HashFileError(InputError):
    code = "bad_hash_file"


def read_entries(path: Path, fmt: str, default_type: str | None = None) -> list[EntryInput]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise HashFileError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise HashFileError(f"{path}:{line}: not UTF-8 text, nothing imported") from exc
    readers = {"csv": _read_csv, "te": _read_te, "stopncii": _read_stopncii}
    if fmt not in readers:
        raise HashFileError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    entries, errors = readers[fmt](text, default_type)
    if errors:
        shown = "\n".join(f"  {path}:{line}: {message}"
                          for line, message in errors[:MAX_REPORTED])
        hidden = len(errors) - MAX_REPORTED
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        raise HashFileError(f"{len(errors)} bad line(s), nothing imported:\n{shown}{more}")
    return entries


Errors = list[tuple[int, str]]


def _entry(kind: str, value: str, status: str = "active", note: str = "",
           metadata: dict[str, Any] | None = None) -> EntryInput:
    signal = signal_type(kind)
    try:
        entry_status = EntryStatus(status.strip().lower() or "active")
    except ValueError:
        raise ValueError(f"unknown status {status!r}") from None
    return EntryInput(signal.name, signal.validate(value), entry_status, metadata or {}, note)


def _read_csv(text: str, default_type: str | None) -> tuple[list[EntryInput], Errors]:
    rows = csv.DictReader(io.StringIO(text))
    missing = {"value"} - set(rows.fieldnames or ())
    if missing or (default_type is None and "signal_type" not in (rows.fieldnames or ())):
        return [], [(1, f"the header must name signal_type and value, got {rows.fieldnames}")]
    entries, errors = [], []
    for row in rows:
        try:
            metadata = json.loads(row.get("metadata") or "{}")
            if not isinstance(metadata, dict):
                raise ValueError("metadata must be a JSON object")
            entries.append(_entry(row.get("signal_type") or default_type or "", row["value"] or "",
                                  row.get("status") or "active", row.get("note") or "",
                                  metadata))
        except (ValueError, TypeError) as exc:
            errors.append((rows.line_num, str(exc)))
    return entries, errors


def _read_te(text: str, default_type: str | None) -> tuple[list[EntryInput], Errors]:
    entries, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, value = line.partition(" ") if default_type is None else (default_type, "", line)
        try:
            entries.append(_entry(kind, value))
        except ValueError as exc:
            errors.append((number, str(exc)))
    return entries, errors


def _read_stopncii(text: str, _default: str | None) -> tuple[list[EntryInput], Errors]:
    try:
        records = json.loads(text)["hashRecords"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return [], [(1, f"not a StopNCII FetchHashes response: {exc}")]
    entries, errors = [], []
    for number, record in enumerate(records, start=1):
        try:
            parsed = dacite.from_dict(StopNCIIHashRecord, record,
                                      config=dacite.Config(cast=[enum.Enum, set]))
            update = stopncii_update(parsed)
            if update is None:
                raise ValueError("unsupported signal type, status or hash value")
            entries.append(EntryInput(update.signal_type, update.value, update.status,
                                      dict(update.metadata)))
        except (ValueError, TypeError, dacite.DaciteError) as exc:
            errors.append((number, f"record {number}: {exc}"))
    return entries, errors


def write_entries(entries: Iterable[EntryInfo], fmt: str, out: TextIO) -> int:
    if fmt not in ("csv", "te"):
        raise HashFileError(f"export writes csv or te, not {fmt!r}")
    count = 0
    writer = csv.writer(out)
    if fmt == "csv":
        writer.writerow(_CSV_COLUMNS)
    for entry in entries:
        if fmt == "csv":
            writer.writerow((entry.signal_type, entry.value, entry.status, entry.note,
                             json.dumps(entry.metadata, sort_keys=True)))
        elif entry.status == EntryStatus.ACTIVE:  # the te format has no status column
            out.write(f"{entry.signal_type} {entry.value}\n")
        else:
            continue
        count += 1
    return count
