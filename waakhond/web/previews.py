"""What a reviewer sees of kept content, following ROOST Coop's wellness defaults: images
arrive blurred and in grayscale; only a deliberate click reveals one (still grayscale, colour
is a second click), and each reveal is written to the audit log. Child safety cases show
nothing, not even a blurred preview, except to the ``child_safety`` role.

The blur happens here, on the server: a CSS blur would still send the picture to the browser."""

from __future__ import annotations

import io
from enum import StrEnum

from PIL import Image, ImageFilter, ImageOps

from waakhond.accounts import Account, Role
from waakhond.cases.queues import CHILD_SAFETY

PREVIEW_SIZE = 320
REVEAL_SIZE = 1024
BLUR_RADIUS = 14  # at 320 px: shapes and layout stay, details and faces do not


class View(StrEnum):
    BLURRED = "blurred"
    GRAYSCALE = "grayscale"
    COLOUR = "colour"


class PreviewDenied(Exception):
    """This person may not see this content."""


def may_see(account: Account, queue: str) -> bool:
    if queue == CHILD_SAFETY.name:
        return account.has(Role.CHILD_SAFETY)
    return account.has(Role.REVIEWER) or account.has(Role.CHILD_SAFETY)


def render_view(data: bytes, view: View) -> bytes:
    """A JPEG of the content as the view allows. Kept content passed intake's checks when it
    arrived, but it is decoded again here with Pillow's bomb protection on."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE) if view is View.BLURRED
                    else (REVEAL_SIZE, REVEAL_SIZE))
    if view is not View.COLOUR:
        image = ImageOps.grayscale(image)
    if view is View.BLURRED:
        image = image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()
