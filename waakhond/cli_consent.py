"""``waakhond consent``: the opt-out face registry from the command line, for staff helping
a person enrol (the person keeps the printed reference and secret) and for verification."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from waakhond.errors import WaakhondError

EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND = 0, 2, 1


def add_commands(commands: Any) -> None:
    consent = commands.add_parser("consent", help="the opt-out face registry")
    actions = consent.add_subparsers(dest="consent_action", required=True)
    enrol = actions.add_parser("enrol", help="enrol 1-10 photos of one face (not kept)")
    enrol.add_argument("photos", nargs="+", type=Path)
    enrol.add_argument("--scope", default="no_sexual", choices=["no_sexual", "no_edits"])
    enrol.add_argument("--by", default="self",
                       choices=["self", "representative", "public_figure_office"])
    enrol.set_defaults(handler=_enrol)
    for name, helptext, handler in (("status", "show an enrolment", _status),
                                    ("delete", "delete an enrolment and every vector", _delete)):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("reference")
        action.add_argument("--secret", required=True)
        action.set_defaults(handler=handler)
    verify = actions.add_parser("verify", help="record the identity check of an enrolment")
    verify.add_argument("reference")
    verify.add_argument("--result", required=True,
                        choices=["verified", "rejected", "unverified"])
    verify.set_defaults(handler=_verify)


def _registry() -> Any:
    from waakhond.consent.photos import photo_embedder
    from waakhond.consent.registry import Registry
    from waakhond.screening import Screener
    from waakhond.store import Database

    return Registry(Database(), photo_embedder(Screener()))


def _enrol(args: argparse.Namespace) -> int:
    from waakhond.consent.registry import RegistryError

    try:
        enrolled = _registry().enrol([path.read_bytes() for path in args.photos], args.scope,
                                     args.by)
    except (RegistryError, WaakhondError, OSError) as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"reference": enrolled.reference, "secret": enrolled.secret,
                      "faces": enrolled.faces, "scope": enrolled.scope.value,
                      "in_force": enrolled.in_force.value}))
    print("give the reference and secret to the person; they are shown only now",
          file=sys.stderr)
    return EXIT_OK


def _print(found: dict[str, Any] | None, missing: str) -> int:
    if found is None:
        print(f"waakhond: {missing}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(found))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    return _print(_registry().status(args.reference, args.secret),
                  "no enrolment with this reference and secret")


def _delete(args: argparse.Namespace) -> int:
    deleted = _registry().delete(args.reference, args.secret)
    return _print({"reference": args.reference, "deleted": True} if deleted else None,
                  "no enrolment with this reference and secret")


def _verify(args: argparse.Namespace) -> int:
    import getpass

    return _print(_registry().set_verification(args.reference, args.result,
                                               f"cli:{getpass.getuser()}"),
                  f"no active enrolment {args.reference}")
