"""What an SMS will cost before it is sent: encoding, characters, segments."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from reminders.api.deps import ReadKey
from reminders.errors import InvalidField
from reminders.scheduler.context import TEMPLATE_VARIABLES
from reminders.schemas import Input, SmallJson, _no_control_chars
from reminders.sender.compose import compose
from reminders.templates import RenderError, check_template, render

router = APIRouter(prefix="/sms", tags=["sms"])
Body = Annotated[str, Field(min_length=1, max_length=2000)]


class PreviewIn(Input):
    text: Body | None = Field(default=None, description="The message as it will be sent.")
    template: Body | None = Field(
        default=None, description="Or a policy step's Jinja2 template ..."
    )
    sample: SmallJson = Field(
        default_factory=dict,
        description="... rendered with these values for the names it can use (`variables`).",
    )
    transliterate: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> PreviewIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give either text or template")
        _no_control_chars((self.text or self.template or "").replace("\n", " "))
        return self


class PreviewOut(BaseModel):
    text: str
    encoding: Literal["GSM-7", "UCS-2"]
    characters: int = Field(description="Septets for GSM-7, UTF-16 code units for UCS-2.")
    segments: int
    parts: list[str]
    ucs2_characters: list[str] = Field(description="The characters that forced UCS-2.")
    replaced: list[tuple[str, str]] = Field(description="Look-alikes replaced by GSM-7 ones.")
    variables: list[str] = Field(
        description="The names a policy's template can use: what a notice provides when it fires."
    )


@router.post("/preview")
def preview(data: PreviewIn, _: ReadKey) -> PreviewOut:
    """Compose the text as the sender would: look-alikes replaced, transliterated if asked."""
    text = data.text or ""
    if data.template is not None:
        # The same checks as a policy's step, so that what previews is what can be saved.
        check_template(data.template, field="template", variables=TEMPLATE_VARIABLES)
        for name in data.sample:
            if name not in TEMPLATE_VARIABLES:
                raise InvalidField(
                    f"{name!r} is not a name a template can use; they are "
                    f"{', '.join(sorted(TEMPLATE_VARIABLES))}",
                    field=f"sample.{name}",
                )
        try:
            text = render(data.template, data.sample)
        except RenderError as exc:
            raise InvalidField(str(exc), field="template") from None
    result = compose(text, transliterate=data.transliterate)
    return PreviewOut(
        text=result.text,
        encoding=result.encoding,
        characters=result.characters,
        segments=result.segments,
        parts=list(result.parts),
        ucs2_characters=list(result.ucs2_characters),
        replaced=list(result.replaced),
        variables=sorted(TEMPLATE_VARIABLES),
    )
