"""A batch works out each anchor's part of the template context once, and gets what each notice
would get alone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reminders.models import Anchor, Contact, Notice
from reminders.scheduler.context import TemplateContexts, template_context

NOW = datetime(2026, 12, 9, 16, 0, tzinfo=UTC)
SOFIA = ZoneInfo("Europe/Sofia")
LONDON = ZoneInfo("Europe/London")


def anchor(anchor_id: int, at: datetime, title: str, location: str) -> Anchor:
    return Anchor(
        id=anchor_id,
        key=f"a{anchor_id}",
        kind="event",
        title=title,
        at=at,
        policy="appointment",
        data={"location": location, "amount": "84.20"},
    )


def contact(name: str, lang: str) -> Contact:
    return Contact(name=name, name_folded="", phone="+359888000001", language=lang)


def test_a_batch_gives_each_notice_what_it_would_get_alone() -> None:
    notice = Notice(key="n", kind="event_reminder", phone="+359888000001", text="", send_at=NOW)
    early = anchor(1, datetime(2026, 12, 10, 8, 15, tzinfo=UTC), "Преглед", "кабинет 5")
    late = anchor(2, datetime(2026, 12, 9, 23, 30, tzinfo=UTC), "Visit", "room 2")
    ivan, john = contact("Иван Петров", "bg"), contact("John Smith", "en")
    cases = [
        (person, event, zone)
        for event in (early, late)
        for zone in (SOFIA, LONDON)
        for person in (ivan, john, None)
    ]
    contexts = TemplateContexts(NOW)
    for _ in range(2):  # the second time from what the batch worked out the first
        for person, event, zone in cases:
            alone = template_context(notice, person, event, zone, NOW)
            assert contexts.build(notice, person, event, zone) == alone
    # 23:30 UTC is the next day in Sofia, the same day in London: the zone is part of the key.
    sofia = contexts.build(notice, ivan, late, SOFIA)
    london = contexts.build(notice, ivan, late, LONDON)
    assert (sofia["when"], london["when"]) == ("утре в 1:30", "днес в 23:30")
    assert contexts.build(notice, john, early, SOFIA)["when"] == "tomorrow at 10:15"
