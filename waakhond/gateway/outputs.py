"""Generated images kept for a while to serve ``response_format=url`` answers.

Files under ``<data>/outputs/``, named by a random token; anything older than the retention
time is deleted whenever a new file is written, so the folder never grows without bound.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from waakhond.errors import WaakhondError

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_MIME_TYPES = {extension: mime for mime, extension in _EXTENSIONS.items()}
_NAME = re.compile(r"^[A-Za-z0-9_-]{20,64}\.(png|jpg|webp)$")


class OutputNotFound(WaakhondError):
    code = "not_found"
    status = 404


class OutputStore:
    def __init__(self, folder: Path, retention_s: int) -> None:
        self.folder = folder
        self.retention_s = retention_s
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes, mime_type: str) -> str:
        self._sweep()
        name = f"{secrets.token_urlsafe(24)}.{_EXTENSIONS.get(mime_type, 'png')}"
        temporary = self.folder / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.folder / name)
        return name

    def load(self, name: str) -> tuple[bytes, str]:
        path = self.folder / name
        # The pattern keeps the name inside the folder (no "..", no slashes).
        if not _NAME.match(name) or not path.is_file() or self._expired(path):
            raise OutputNotFound("no such image, or it has expired")
        return path.read_bytes(), _MIME_TYPES[name.rsplit(".", 1)[1]]

    def _expired(self, path: Path) -> bool:
        return time.time() - path.stat().st_mtime > self.retention_s

    def _sweep(self) -> None:
        for path in self.folder.iterdir():
            try:
                if self._expired(path):
                    path.unlink()
            except FileNotFoundError:  # another request swept it first
                continue
