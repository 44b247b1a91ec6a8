"""Errors a caller can act on. Each says what was wrong in words a user understands."""

from __future__ import annotations


class WaakhondError(Exception):
    """Base of every error waakhond raises on purpose."""

    code = "waakhond_error"


class InputError(WaakhondError):
    """The content cannot be screened as given; nothing was decided about it."""

    code = "invalid_input"


class EmptyInput(InputError):
    code = "empty_input"


class UnsupportedType(InputError):
    code = "unsupported_type"


class InputTooLarge(InputError):
    """Too many bytes, pixels or frames: refused before decoding (decompression bombs)."""

    code = "input_too_large"


class CorruptImage(InputError):
    """The bytes claim to be an image but do not decode (truncated, damaged, hostile)."""

    code = "corrupt_image"


class Unavailable(WaakhondError):
    """This server cannot do what was asked: a model it needs is not loaded. Nothing was
    stored or decided."""

    code = "unavailable"
    status = 503


class UnknownCountry(WaakhondError):
    code = "unknown_country"


class PolicyError(WaakhondError):
    """A policy file is malformed; raised at load time, never while screening."""

    code = "policy_error"
