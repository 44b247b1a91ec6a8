"""Reading uploaded files without trusting their size: refused before they fill memory."""

from __future__ import annotations

from fastapi import Request, UploadFile

from waakhond.errors import EmptyInput, InputTooLarge


async def read_upload(request: Request, upload: UploadFile) -> bytes:
    limit = request.app.state.gateway.screener.settings.intake.max_bytes
    # The multipart parser spooled the file to disk and counted it; refuse before reading.
    if upload.size is not None and upload.size > limit:
        raise InputTooLarge(f"the file is {upload.size:,} bytes; the limit is {limit:,} bytes")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"the file is over the limit of {limit:,} bytes")
    if not data:
        raise EmptyInput(f"the uploaded file {upload.filename or ''!r} is empty")
    return data
