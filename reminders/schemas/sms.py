"""The SMS preview's request and response."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from reminders.schemas.common import Input, SmallJson, _no_control_chars

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
