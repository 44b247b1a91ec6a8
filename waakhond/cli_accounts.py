"""``waakhond account``: console accounts for moderators. Passwords are read from the terminal
(or one line of standard input, for scripts), never from the command line, where other users
of the machine could see them."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def add_commands(commands: Any) -> None:
    account = commands.add_parser("account", help="moderator console accounts")
    actions = account.add_subparsers(dest="account_action", required=True)
    create = actions.add_parser("create", help="a new account; asks for its password")
    create.add_argument("username")
    create.add_argument("--role", dest="roles", action="append", required=True,
                        choices=["reviewer", "child_safety", "admin"],
                        help="repeat for several roles")
    create.set_defaults(handler=_create)
    password = actions.add_parser("password", help="set a new password (signs the account out)")
    password.add_argument("username")
    password.set_defaults(handler=_password)
    for name, active in (("disable", False), ("enable", True)):
        toggle = actions.add_parser(name, help=f"{name} an account (disable signs it out)")
        toggle.add_argument("username")
        toggle.set_defaults(handler=_set_active, active=active)
    actions.add_parser("list", help="every account and its roles").set_defaults(handler=_list)


def _accounts() -> Any:
    from waakhond.accounts import Accounts
    from waakhond.store import Database

    return Accounts(Database())


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _run(action: Any) -> int:
    from waakhond.accounts import AccountError

    try:
        action()
    except (AccountError, ValueError) as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _create(args: argparse.Namespace) -> int:
    return _run(lambda: print(json.dumps({"created": _accounts().create(
        args.username, _read_password(), args.roles).username, "roles": sorted(args.roles)})))


def _password(args: argparse.Namespace) -> int:
    return _run(lambda: _accounts().set_password(args.username, _read_password()))


def _set_active(args: argparse.Namespace) -> int:
    return _run(lambda: _accounts().set_active(args.username, args.active))


def _list(args: argparse.Namespace) -> int:
    print(json.dumps(_accounts().list(), indent=2))
    return EXIT_OK
