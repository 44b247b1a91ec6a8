"""``/v1/images/generations`` and ``/v1/images/edits``, compatible with the OpenAI images API.

Clients keep the official SDK and point ``base_url`` at waakhond. Extra fields: ``country``
(or the ``X-Waakhond-Country`` header) for the jurisdiction, and a ``waakhond`` object in the
answer with the request id, the generation records and any withheld outputs.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from waakhond.api.deps import (
    BudgetHeader,
    CountryHeader,
    gateway,
    gateway_request,
    requires,
    within_budget,
)
from waakhond.api.errors import ERROR_RESPONSES
from waakhond.api.uploads import read_upload
from waakhond.errors import InputError
from waakhond.gateway.access import Caller, Scope
from waakhond.gateway.outputs import OutputStore
from waakhond.gateway.service import GenerationResult
from waakhond.gateway.upstream import MAX_IMAGES, SIZES, ImageRequest
from waakhond.screening import MAX_PROMPT_CHARS

router = APIRouter(prefix="/v1/images", tags=["images (OpenAI-compatible)"],
                   responses=ERROR_RESPONSES)
Size = Literal[SIZES]  # type: ignore[valid-type]
ResponseFormat = Literal["url", "b64_json"]
# Passed on to the generator as given.
OPTIONS = ("quality", "style", "background", "output_format")


class GenerationBody(BaseModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    size: Size = "auto"
    model: str | None = Field(None, max_length=100)
    response_format: ResponseFormat | None = None
    user: str | None = Field(None, max_length=200)
    safety_identifier: str | None = Field(None, max_length=200)
    quality: str | None = Field(None, max_length=20)
    style: str | None = Field(None, max_length=20)
    background: str | None = Field(None, max_length=20)
    output_format: str | None = Field(None, max_length=10)
    country: str | None = Field(None, max_length=10, description="ISO 3166 country code")


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    waakhond: dict[str, Any]


@router.post("/generations", response_model=ImagesResponse)
async def generations(request: Request, body: GenerationBody,
                      found: Annotated[Caller, Depends(requires(Scope.GENERATE))],
                      header_country: CountryHeader = None,
                      budget: BudgetHeader = None) -> ImagesResponse:
    options = {key: value for key in OPTIONS if (value := getattr(body, key)) is not None}
    image_request = ImageRequest(prompt=body.prompt, n=body.n, size=body.size,
                                 model=body.model, options=options)
    who = gateway_request(found, body.safety_identifier or body.user, body.country,
                          header_country)
    result = await within_budget(request, budget, gateway(request).generate, who,
                                 image_request)
    return _answer(request, result, body.response_format)


@router.post("/edits", response_model=ImagesResponse)
async def edits(
    request: Request,
    found: Annotated[Caller, Depends(requires(Scope.GENERATE))],
    prompt: Annotated[str, Form(min_length=1, max_length=MAX_PROMPT_CHARS)],
    image: Annotated[list[UploadFile] | None, File(description="the photo to edit")] = None,
    image_array: Annotated[list[UploadFile] | None, File(alias="image[]")] = None,
    mask: Annotated[UploadFile | None, File()] = None,
    n: Annotated[int, Form(ge=1, le=MAX_IMAGES)] = 1,
    size: Annotated[Size, Form()] = "auto",
    model: Annotated[str | None, Form(max_length=100)] = None,
    response_format: Annotated[ResponseFormat | None, Form()] = None,
    user: Annotated[str | None, Form(max_length=200)] = None,
    safety_identifier: Annotated[str | None, Form(max_length=200)] = None,
    country: Annotated[str | None, Form(max_length=10)] = None,
    header_country: CountryHeader = None,
    budget: BudgetHeader = None,
) -> ImagesResponse:
    photos = [*(image or []), *(image_array or [])]
    if len(photos) != 1:
        raise InputError(f"send exactly one image to edit (got {len(photos)})")
    photo = await read_upload(request, photos[0])
    mask_bytes = await read_upload(request, mask) if mask is not None else None
    image_request = ImageRequest(prompt=prompt, n=n, size=size, model=model, image=photo,
                                 mask=mask_bytes)
    who = gateway_request(found, safety_identifier or user, country, header_country)
    result = await within_budget(request, budget, gateway(request).generate, who,
                                 image_request)
    return _answer(request, result, response_format)


@router.get("/outputs/{name}", response_class=Response, responses={
    200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
          "description": "the image"}})
async def output(request: Request, name: str) -> Response:
    """A generated image served for ``response_format=url`` (deleted after the retention
    time). The name is a long random token."""
    store: OutputStore = request.app.state.outputs
    data, mime_type = store.load(name)
    return Response(data, media_type=mime_type)


def _answer(request: Request, result: GenerationResult,
            response_format: str | None) -> ImagesResponse:
    store: OutputStore = request.app.state.outputs
    data = []
    for out in result.outputs:
        if response_format == "url":
            name = store.save(out.data, out.mime_type)
            data.append(ImageData(url=str(request.url_for("output", name=name))))
        else:
            data.append(ImageData(b64_json=base64.b64encode(out.data).decode()))
    standing = result.standing
    return ImagesResponse(created=int(time.time()), data=data, waakhond={
        "request_id": result.request_id,
        "prompt_reference": result.prompt_reference,
        "records": [out.record_id for out in result.outputs],
        "actions": [out.verdict.action.value for out in result.outputs],
        "labels": [out.verdict.labels for out in result.outputs],
        "withheld": result.withheld,
        "warning": standing.warning if standing else None,
    })
