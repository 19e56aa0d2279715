"""What an SMS will cost before it is sent: encoding, characters, segments."""

from __future__ import annotations

from fastapi import APIRouter

from reminders.api.deps import ReadKey
from reminders.errors import InvalidField
from reminders.scheduler.context import TEMPLATE_VARIABLES
from reminders.schemas.sms import PreviewIn, PreviewOut
from reminders.sender.compose import compose
from reminders.templates import RenderError, check_template, render

router = APIRouter(prefix="/sms", tags=["sms"])


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
