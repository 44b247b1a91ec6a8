"""Argon2id for every secret a person chooses or must type (console passwords, portal PINs):
argon2-cffi with its defaults (RFC 9106's low-memory profile), rehashed when they change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Checked when no account matches, so an unknown name takes as long as a wrong password.
_DECOY = _HASHER.hash("decoy password that matches nothing")


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    try:
        return _HASHER.verify(stored or _DECOY, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
