"""``waakhond bank ...`` and ``waakhond match``: hash banks from the command line.

Banks live in the default database (``WAAKHOND_DATABASE_URL``, or ``$WAAKHOND_DATA/waakhond.db``
with ``./data`` by default); a running service sees every change within a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from waakhond.errors import WaakhondError

EXIT_OK, EXIT_UNREADABLE, EXIT_MATCHED = 0, 2, 3


def add_commands(commands: Any) -> None:
    bank = commands.add_parser("bank", help="manage hash banks (known abuse, victims' hashes)")
    actions = bank.add_subparsers(dest="bank_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a bank")
    create.add_argument("name")
    create.add_argument("--kind", required=True,
                        choices=["csam_known", "ncii_victim", "own_removals", "negative"])
    create.add_argument("--source", default="", help="where the hashes come from")
    create.add_argument("--distance", type=int, default=31,
                        help="PDQ match distance, 0..31 (default 31)")
    create.add_argument("--enabled-ratio", type=float, default=1.0,
                        help="share of content the bank acts on, for gradual roll-out")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list banks and their entry counts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    imports = actions.add_parser("import", help="import a hash file (all lines or none)")
    imports.add_argument("name")
    imports.add_argument("file", type=Path)
    imports.add_argument("--format", default="csv", choices=["csv", "te", "stopncii"])
    imports.add_argument("--signal-type", help="type of bare hashes (te and csv files)")
    imports.set_defaults(handler=_import)

    export = actions.add_parser("export", help="write a bank's entries")
    export.add_argument("name")
    export.add_argument("--format", default="csv", choices=["csv", "te"])
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)

    for verb, text in (("withdraw", "stop an entry matching (kept, marked withdrawn)"),
                       ("delete", "purge an entry"), ("restore", "make an entry active again"),
                       ("release", "release an entry paused as a match flood")):
        command = actions.add_parser(verb, help=text)
        _entry_arguments(command)
        command.set_defaults(handler=_change, verb=verb)

    feedback = actions.add_parser("feedback", help="confirm or dispute a match on an entry")
    _entry_arguments(feedback)
    feedback.add_argument("verdict", choices=["confirm", "dispute"])
    feedback.add_argument("--by", default=os.environ.get("USER", ""))
    feedback.set_defaults(handler=_feedback)

    fetch = actions.add_parser(
        "fetch", help="fetch a StopNCII-compatible exchange into the bank, resuming where "
                      "the last fetch stopped (keys: WAAKHOND_STOPNCII_SUBSCRIPTION_KEY, "
                      "WAAKHOND_STOPNCII_FETCH_KEY)")
    fetch.add_argument("name")
    fetch.add_argument("--url", required=True, help="the exchange's base URL")
    fetch.set_defaults(handler=_fetch)

    match = commands.add_parser("match", help="look images up in every hash bank")
    match.add_argument("paths", nargs="+", type=Path)
    match.add_argument("--json", action="store_true")
    match.set_defaults(handler=_match)


def _entry_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("name", help="the bank")
    command.add_argument("hash", help="the entry's hash value")
    command.add_argument("--signal-type", default=None,
                         help="pdq, md5 or sha256 (default: md5 for 32 hex characters, "
                              "else pdq)")


def _service() -> Any:
    from waakhond.hashing.banks import BankService
    from waakhond.store import Database

    return BankService(Database())


def _guarded(handler: Any) -> Any:
    """Bad input or a refused bank operation: a one-line message and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (WaakhondError, ValueError, OSError) as exc:
            print(f"waakhond: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE

    return run


@_guarded
def _create(args: argparse.Namespace) -> int:
    info = _service().create(args.name, args.kind, args.source, args.distance,
                             args.enabled_ratio)
    print(f"created bank {info.name} ({info.kind.value}, distance {info.match_distance}, "
          f"enabled for {info.enabled_ratio:.0%} of content)")
    return EXIT_OK


@_guarded
def _list(args: argparse.Namespace) -> int:
    banks = _service().list()
    if args.json:
        print(json.dumps([asdict(b) for b in banks]))
        return EXIT_OK
    for bank in banks:
        counts = ", ".join(f"{status} {n}" for status, n in sorted((bank.entries or {}).items()))
        print(f"{bank.name:<24} {bank.kind.value:<13} d<={bank.match_distance:<3} "
              f"{bank.enabled_ratio:>4.0%}  {counts or 'empty'}  {bank.source}")
    return EXIT_OK


@_guarded
def _import(args: argparse.Namespace) -> int:
    from waakhond.hashing.formats import read_entries

    entries = read_entries(args.file, args.format, args.signal_type)
    count = _service().add(args.name, entries)
    print(f"imported {count} entries into {args.name}")
    return EXIT_OK


@_guarded
def _export(args: argparse.Namespace) -> int:
    from waakhond.hashing.formats import write_entries

    service = _service()
    if args.output:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            count = write_entries(service.entries(args.name), args.format, out)
        print(f"exported {count} entries to {args.output}", file=sys.stderr)
    else:
        write_entries(service.entries(args.name), args.format, sys.stdout)
    return EXIT_OK


def _signal_type(args: argparse.Namespace) -> str:
    return args.signal_type or ("md5" if len(args.hash.strip()) == 32 else "pdq")


@_guarded
def _change(args: argparse.Namespace) -> int:
    from waakhond.hashing.exchange import EntryStatus

    service, kind = _service(), _signal_type(args)
    if args.verb == "release":
        entry = service.release(args.name, kind, args.hash)
    else:
        status = {"withdraw": EntryStatus.WITHDRAWN, "delete": EntryStatus.DELETED,
                  "restore": EntryStatus.ACTIVE}[args.verb]
        entry = service.set_status(args.name, kind, args.hash, status)
    print(f"{args.name}: {entry.signal_type} {entry.value}: "
          f"{'purged' if args.verb == 'delete' else args.verb + ' done'}")
    return EXIT_OK


@_guarded
def _feedback(args: argparse.Namespace) -> int:
    from waakhond.hashing.exchange import Feedback

    service = _service()
    entry = service.entry(args.name, _signal_type(args), args.hash)
    service.feedback(entry.id, Feedback(args.verdict), by=args.by)
    print(f"{args.name}: {args.verdict} recorded on {entry.signal_type} {entry.value}")
    return EXIT_OK


@_guarded
def _fetch(args: argparse.Namespace) -> int:
    from waakhond.hashing.exchange import StopNCIIExchange

    exchange = StopNCIIExchange(
        args.url, os.environ.get("WAAKHOND_STOPNCII_SUBSCRIPTION_KEY", ""),
        os.environ.get("WAAKHOND_STOPNCII_FETCH_KEY", ""),
        os.environ.get("WAAKHOND_STOPNCII_FEEDBACK_KEY"))
    service = _service()
    applied = skipped = 0
    for batch in exchange.fetch(service.checkpoint(args.name)):
        applied += service.apply(args.name, batch)  # each page stored with its checkpoint
        skipped += batch.skipped
    print(f"fetched {applied} updates into {args.name} ({skipped} unusable records skipped)")
    return EXIT_OK


@_guarded
def _match(args: argparse.Namespace) -> int:
    from waakhond.config import ScreeningSettings
    from waakhond.hashing.matcher import HashMatcher
    from waakhond.intake import decode_image
    from waakhond.signals.base import SignalSet
    from waakhond.signals.hashes import HashDetector

    matcher, hasher = HashMatcher(_service()), HashDetector()
    limits = ScreeningSettings.from_env().intake
    matched = False
    for path in args.paths:
        hashes = hasher.run(decode_image(path.read_bytes(), limits), SignalSet())
        result = matcher.match(hashes)
        matched = matched or bool(result.matches)
        if args.json:
            print(json.dumps({"source": str(path), "hashes": asdict(hashes),
                              **asdict(result)}))
            continue
        print(f"{path}: pdq {hashes.pdq} (quality {hashes.pdq_quality}), md5 {hashes.md5}")
        for m in result.matches:
            print(f"  MATCH {m.bank} ({m.kind}) {m.signal_type} distance {m.distance} "
                  f"entry {m.entry_id}")
        for m in result.suppressed:
            print(f"  suppressed {m.bank} ({m.kind}) entry {m.entry_id}")
        if not result.matches and not result.suppressed:
            print("  no match")
    return EXIT_MATCHED if matched else EXIT_OK
