"""Screening for platforms: prompts, images, hash matches and provenance checks.

Each answer is the full verdict (as ``waakhond check --json`` prints it) with the decision's
reference in the decision log.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
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
from waakhond.core import Context
from waakhond.errors import CorruptImage
from waakhond.gateway.access import Caller, Scope
from waakhond.gateway.service import ScreenResult
from waakhond.screening import MAX_PROMPT_CHARS

router = APIRouter(prefix="/v1", tags=["screening"], responses=ERROR_RESPONSES)
ImageContext = Annotated[str, Form(
    pattern="^(upload|generated|edit_input)$",
    description="where the image comes from: upload, generated or edit_input")]


class PromptBody(BaseModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    image_b64: str | None = Field(None, description="for an edit: the input photo, base64")
    country: str | None = Field(None, max_length=10)
    end_user: str | None = Field(None, max_length=200)


class ScreenAnswer(BaseModel):
    reference: str
    action: str
    labels: list[str]
    verdict: dict[str, Any]
    warning: str | None = None
    restriction: dict[str, Any] | None = Field(None, description=(
        "for a restricted upload: the statement of reasons for the uploader (DSA Art. 17) "
        "with the secret that opens a complaint; pass it on"))


@router.post("/screen/prompt", response_model=ScreenAnswer)
async def screen_prompt(request: Request, body: PromptBody,
                        found: Annotated[Caller, Depends(requires(Scope.SCREEN))],
                        header_country: CountryHeader = None,
                        budget: BudgetHeader = None) -> ScreenAnswer:
    """Screen a text-to-image prompt, or an edit instruction with its input photo."""
    image = _decode_base64(body.image_b64) if body.image_b64 else None
    who = gateway_request(found, body.end_user, body.country, header_country)
    result = await within_budget(request, budget, gateway(request).screen_prompt, who,
                                 body.prompt, image)
    return _answer(result)


@router.post("/screen/image", response_model=ScreenAnswer)
async def screen_image(request: Request, found: Annotated[Caller, Depends(
                           requires(Scope.SCREEN))],
                       file: Annotated[UploadFile, File(description="the image")],
                       context: ImageContext = "upload",
                       country: Annotated[str | None, Form(max_length=10)] = None,
                       end_user: Annotated[str | None, Form(max_length=200)] = None,
                       header_country: CountryHeader = None,
                       budget: BudgetHeader = None) -> ScreenAnswer:
    """Screen an uploaded, generated or to-be-edited image."""
    data = await read_upload(request, file)
    who = gateway_request(found, end_user, country, header_country)
    result = await within_budget(request, budget, gateway(request).screen_image, who, data,
                                 Context(context))
    return _answer(result)


@router.post("/match")
async def match(request: Request, _: Annotated[Caller, Depends(requires(Scope.SCREEN))],
                file: Annotated[UploadFile, File(description="the image")],
                budget: BudgetHeader = None) -> dict[str, Any]:
    """Hash an image and look it up in the hash banks: hashes and matches together."""
    data = await read_upload(request, file)
    return await within_budget(request, budget, gateway(request).match, data)


@router.post("/verify")
async def verify(request: Request, _: Annotated[Caller, Depends(requires(Scope.SCREEN))],
                 file: Annotated[UploadFile, File(description="the image")],
                 budget: BudgetHeader = None) -> dict[str, Any]:
    """Does this image carry waakhond's C2PA manifest or watermark, and from which generation
    record? Lets a victim or platform show that an image is synthetic."""
    data = await read_upload(request, file)
    return await within_budget(request, budget, gateway(request).verify, data)


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CorruptImage("image_b64 is not valid base64") from None


def _answer(result: ScreenResult) -> ScreenAnswer:
    verdict = result.verdict
    return ScreenAnswer(reference=result.reference, action=verdict.action.value,
                        labels=verdict.labels, verdict=verdict.to_dict(),
                        warning=result.standing.warning if result.standing else None,
                        restriction=asdict(result.restriction) if result.restriction else None)
