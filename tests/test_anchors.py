"""plan_for / cancel_for on a minimal anchor: changes follow the source, never twice.

Each is called as a caller calls it: then ``commit_and_schedule``, which writes the jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders.models import Anchor, AnchorRecipient, Attempt, Contact, Notice
from reminders.pending_jobs import commit_and_schedule
from reminders.sandbox import MAX_STEPS
from reminders.scheduler import firing
from reminders.scheduler.anchors import PlanReport, cancel_for, plan_for
from reminders.scheduler.firing import fire
from reminders.scheduler.notice_scheduler import NoticeScheduler, job_id
from reminders.sender.outbox import OutboxSender
from reminders.settings import Settings, load_settings
from tests.conftest import account_session

SOFIA = ZoneInfo("Europe/Sofia")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # These tests are about where steps land, quiet hours included: the default window, pinned.
    return load_settings(database_url=database_url, quiet_hours="21:00-08:00")


@pytest.fixture
def scheduler(engine: Engine) -> NoticeScheduler:
    # Never started: planning only writes jobs; nothing fires unless a test calls fire(). Its
    # clock is the tests' pinned one: a step after NOW gets a job, one before it is due.
    return NoticeScheduler(engine, clock=lambda: NOW)


def add_contact(session: Session, name: str, phone: str, **extra: Any) -> Contact:
    contact = Contact(name=name, name_folded=name.casefold(), phone=phone, **extra)
    session.add(contact)
    session.commit()
    return contact


def add_anchor(
    session: Session,
    at: datetime,
    recipients: list[Contact],
    *,
    kind: str = "event",
    policy: str = "appointment",
    **extra: Any,
) -> Anchor:
    extra.setdefault("data", {"location": "кабинет 5"})
    anchor = Anchor(
        key=f"test:{at.isoformat()}:{kind}",
        kind=kind,
        title="Dr. Petrova",
        at=at,
        policy=policy,
        **extra,
    )
    session.add(anchor)
    session.commit()
    for contact in recipients:
        session.add(
            AnchorRecipient(anchor_id=anchor.id, phone=contact.phone, contact_id=contact.id)
        )
    session.commit()
    return anchor


def plan_now(session: Session, scheduler: NoticeScheduler, anchor_id: Any, **kw: Any) -> PlanReport:
    report = plan_for(session, scheduler, anchor_id, **kw)
    commit_and_schedule(session)
    return report


def cancel_now(
    session: Session, scheduler: NoticeScheduler, anchor_id: Any, *, reason: str
) -> PlanReport:
    report = cancel_for(session, scheduler, anchor_id, reason=reason)
    commit_and_schedule(session)
    return report


def notices(session: Session, anchor: Anchor) -> list[Notice]:
    session.expire_all()
    return list(
        session.exec(select(Notice).where(Notice.anchor_id == anchor.id).order_by(Notice.key))
    )


def jobs(engine: Engine) -> dict[str, tuple[float, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, next_run_time, job_state FROM apscheduler_jobs")).all()
    return {r[0]: (r[1], bytes(r[2])) for r in rows}


def test_plan_move_and_cancel(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100001")
        jane = add_contact(
            session, "Jane", "+447911123456", timezone="Europe/London", language="en"
        )
        start = datetime(2026, 12, 10, 10, 30, tzinfo=SOFIA)
        anchor = add_anchor(session, start, [ivan, jane])

        report = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert report.as_dict() == {
            "created": 4,
            "moved": 0,
            "updated": 0,
            "restored": 0,
            "expired": 0,
            "cancelled": 0,
            "unchanged": 0,
        }
        planned = {(n.phone, n.step): n.send_at for n in notices(session, anchor)}
        assert planned == {
            # The day before at 18:00 on each recipient's own clock; 2 hours before the event.
            ("+359888100001", 0): datetime(2026, 12, 9, 16, 0, tzinfo=UTC),
            ("+359888100001", 1): datetime(2026, 12, 10, 6, 30, tzinfo=UTC),
            ("+447911123456", 0): datetime(2026, 12, 9, 18, 0, tzinfo=UTC),
            # 06:30 in London is inside Jane's quiet hours: moved to 20:59 the evening before.
            ("+447911123456", 1): datetime(2026, 12, 9, 20, 59, tzinfo=UTC),
        }
        before = jobs(engine)
        assert set(before) == {job_id(n.id) for n in notices(session, anchor)}

        # Planning the same thing again changes nothing, not even the job rows.
        again = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert again.as_dict()["unchanged"] == 4 and not again.created and not again.moved
        assert jobs(engine) == before
        assert len(notices(session, anchor)) == 4

        # The event moves a day later: every notice and its job move with it.
        anchor.at = start + timedelta(days=1)
        session.add(anchor)
        session.commit()
        moved = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert len(moved.moved) == 4
        after = {n.id: n.send_at for n in notices(session, anchor)}
        for notice_id, send_at in after.items():
            assert jobs(engine)[job_id(notice_id)][0] == send_at.timestamp()
        assert sorted(after.values())[0] == datetime(2026, 12, 10, 16, 0, tzinfo=UTC)

        cancelled = cancel_now(session, scheduler, anchor.id, reason="the event was cancelled")
        assert len(cancelled.cancelled) == 4
        assert {n.status for n in notices(session, anchor)} == {"cancelled"}
        assert {n.status_reason for n in notices(session, anchor)} == {"the event was cancelled"}
        assert jobs(engine) == {}
        # A cancelled anchor plans nothing new.
        assert plan_now(session, scheduler, anchor.id, settings=settings, now=NOW).created == []


def test_past_steps_are_recorded_as_expired(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100002")
        # Booked at 12:00 UTC for 16:00 Sofia the same day: the day-before step already passed.
        anchor = add_anchor(session, datetime(2026, 11, 25, 16, 0, tzinfo=SOFIA), [ivan])
        report = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert len(report.created) == 1 and len(report.expired) == 1
        day_before, two_hours = notices(session, anchor)
        assert day_before.status == "expired"
        assert "2026-11-24 18:00" in (day_before.status_reason or "")
        # Two hours before is NOW itself: due at once, with no job to wait for.
        assert two_hours.status == "due"
        assert set(jobs(engine)) == set()


def test_quiet_hours_move_an_early_reminder_to_the_evening_before(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100003")
        anchor = add_anchor(session, datetime(2026, 12, 10, 7, 30, tzinfo=SOFIA), [ivan])
        plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        _, two_hours = notices(session, anchor)
        assert two_hours.send_at.astimezone(SOFIA) == datetime(2026, 12, 9, 20, 59, tzinfo=SOFIA)
        assert "quiet hours" in (two_hours.status_reason or "")


def test_removed_recipient_loses_only_their_pending_notices(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        a = add_contact(session, "A", "+359888100004")
        b = add_contact(session, "B", "+359888100005")
        anchor = add_anchor(session, datetime(2026, 12, 10, 10, 30, tzinfo=SOFIA), [a, b])
        plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        recipient = session.get(AnchorRecipient, (anchor.id, b.phone))
        session.delete(recipient)
        session.commit()
        report = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert len(report.cancelled) == 2 and report.unchanged == 2
        by_phone = {(n.phone, n.status) for n in notices(session, anchor)}
        assert by_phone == {(a.phone, "scheduled"), (b.phone, "cancelled")}


def test_sent_notice_is_never_planned_again(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван Петров", "+359888100006")
        now = datetime.now(UTC)
        anchor = add_anchor(session, now + timedelta(hours=1), [ivan], policy="appointment")
        plan_now(session, scheduler, anchor.id, settings=settings, now=now - timedelta(days=2))
        day_before, two_hours = notices(session, anchor)
        # The contact is renamed after planning: the template renders the new name when it fires.
        ivan.name = "Иван Иванов"
        session.add(ivan)
        day_before.text = "Здравейте, {{ name }}: {{ title }} в {{ time }}, {{ location }}."
        day_before.send_at = now - timedelta(minutes=5)
        session.add(day_before)
        session.commit()
        sender = OutboxSender(settings, engine)
        assert fire(engine, sender, day_before.id, settings=settings) == "sent"
        with engine.connect() as conn:
            sent_text = conn.execute(text("SELECT text FROM outbox")).scalar()
        local = (now + timedelta(hours=1)).astimezone(SOFIA).strftime("%H:%M")
        assert sent_text == f"Здравейте, Иван Иванов: Dr. Petrova в {local}, кабинет 5."

        # Planning again (the event moved) moves the open notice and leaves the sent one alone.
        anchor.at = now + timedelta(days=3)
        session.add(anchor)
        session.commit()
        report = plan_now(session, scheduler, anchor.id, settings=settings, now=now)
        assert report.moved == [two_hours.id]
        assert {n.id: n.status for n in notices(session, anchor)}[day_before.id] == "sent"


def test_a_notice_an_earlier_start_puts_in_the_past_expires_and_loses_its_job(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100008")
        anchor = add_anchor(session, NOW + timedelta(days=10), [ivan])
        plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        day_before, two_hours = notices(session, anchor)
        assert set(jobs(engine)) == {job_id(day_before.id), job_id(two_hours.id)}

        # The appointment comes forward to three hours from now: yesterday's 18:00 has passed.
        anchor.at = NOW + timedelta(hours=3)
        session.add(anchor)
        session.commit()
        report = plan_now(session, scheduler, anchor.id, settings=settings, now=NOW)
        assert (report.expired, report.moved, report.updated) == (
            [day_before.id],
            [two_hours.id],
            [],
        )
        assert {n.id: n.status for n in notices(session, anchor)} == {
            day_before.id: "expired",
            two_hours.id: "scheduled",
        }
        assert set(jobs(engine)) == {job_id(two_hours.id)}


@pytest.mark.parametrize(
    ("kind", "late_by", "event_in", "outcome", "reason"),
    [
        ("event", timedelta(minutes=30), timedelta(hours=1), "sent", None),
        ("event", timedelta(hours=3), timedelta(hours=1), "expired", "past the 2 h"),
        ("event", timedelta(minutes=10), -timedelta(minutes=1), "expired", "already started"),
        ("bill", timedelta(hours=20), timedelta(days=-3), "sent", None),
        ("bill", timedelta(hours=25), timedelta(days=-3), "expired", "past the 24 h"),
    ],
)
def test_a_late_notice_goes_out_only_while_useful(
    engine: Engine,
    settings: Settings,
    scheduler: NoticeScheduler,
    kind: str,
    late_by: timedelta,
    event_in: timedelta,
    outcome: str,
    reason: str | None,
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100007")
        now = datetime.now(UTC)
        anchor = add_anchor(
            session,
            now + event_in,
            [ivan],
            kind=kind,
            policy="appointment" if kind == "event" else "bill",
            data={"amount": "84.20", "currency": "BGN"},
        )
        plan_now(session, scheduler, anchor.id, settings=settings, now=now - timedelta(days=30))
        notice = notices(session, anchor)[0]
        notice.status, notice.send_at = "scheduled", now - late_by
        session.add(notice)
        session.commit()
        result = fire(engine, OutboxSender(settings, engine), notice.id, settings=settings)
        assert result == outcome
        session.expire_all()
        fired = session.get(Notice, notice.id)
        assert fired is not None
        if reason:
            assert reason in (fired.status_reason or "")


def test_opted_out_contact_is_suppressed_when_the_reminder_fires(
    engine: Engine, settings: Settings, scheduler: NoticeScheduler
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100008")
        now = datetime.now(UTC)
        anchor = add_anchor(session, now + timedelta(hours=1), [ivan])
        plan_now(session, scheduler, anchor.id, settings=settings, now=now - timedelta(days=2))
        notice = notices(session, anchor)[1]
        ivan.opted_out = True
        session.add(ivan)
        notice.send_at = now
        session.add(notice)
        session.commit()
        assert (
            fire(engine, OutboxSender(settings, engine), notice.id, settings=settings)
            == "suppressed"
        )


def fire_at(
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    settings: Settings,
    notice: Notice,
    moment: datetime,
) -> str:
    """Fire ``notice`` as if the clock read ``moment``; the text the outbox got."""
    monkeypatch.setattr(firing, "utcnow", lambda: moment.astimezone(UTC))
    assert fire(engine, OutboxSender(settings, engine), notice.id, settings=settings) == "sent"
    with engine.connect() as conn:
        query = text("SELECT text FROM outbox WHERE notice_id = :id")
        return str(conn.execute(query, {"id": notice.id}).scalar_one())


THURSDAY = datetime(2026, 12, 10, tzinfo=SOFIA)


@pytest.mark.parametrize(
    ("language", "zone", "at", "anchor", "moved", "expected"),
    [
        # 2 hours before 07:30 is in quiet hours: it goes the evening before, so "tomorrow".
        (
            "bg",
            "Europe/Sofia",
            THURSDAY.replace(hour=7, minute=30),
            {"data": {"location": "кабинет 5"}},
            "20:59",
            ["Напомняне: Dr. Petrova утре в 7:30, кабинет 5."] * 2,
        ),
        # The same event in London is at 5:30 on the recipient's clock.
        (
            "en",
            "Europe/London",
            THURSDAY.replace(hour=7, minute=30),
            {"data": {"location": "room 5"}},
            "20:59",
            ["Reminder: Dr. Petrova tomorrow at 5:30, room 5."] * 2,
        ),
        (
            "bg",
            "Europe/Sofia",
            THURSDAY.replace(hour=10, minute=30),
            {"data": {"location": "кабинет 5"}},
            "08:30",
            [
                "Напомняне: Dr. Petrova утре в 10:30, кабинет 5.",
                "Напомняне: Dr. Petrova днес в 10:30, кабинет 5.",
            ],
        ),
        (
            "en",
            "Europe/Sofia",
            THURSDAY.replace(hour=10, minute=30),
            {"data": {}},
            "08:30",
            ["Reminder: Dr. Petrova tomorrow at 10:30.", "Reminder: Dr. Petrova today at 10:30."],
        ),
        # An all-day event has no time; 2 hours before its midnight is 22:00 the evening before.
        (
            "bg",
            "Europe/Sofia",
            THURSDAY,
            {"data": {}, "all_day": True, "timezone": "Europe/Sofia"},
            "20:59",
            ["Напомняне: Dr. Petrova утре."] * 2,
        ),
        (
            "en",
            "Europe/London",
            THURSDAY,
            {"data": {"location": "home"}, "all_day": True, "timezone": "Europe/Sofia"},
            "20:59",
            ["Reminder: Dr. Petrova tomorrow, home."] * 2,
        ),
    ],
)
def test_seeded_appointment_texts_are_true_on_the_day_they_go_out(
    engine: Engine,
    settings: Settings,
    scheduler: NoticeScheduler,
    monkeypatch: pytest.MonkeyPatch,
    language: str,
    zone: str,
    at: datetime,
    anchor: dict[str, Any],
    moved: str,
    expected: list[str],
) -> None:
    with account_session(engine) as session:
        contact = add_contact(session, "Ivan", "+359888100009", language=language, timezone=zone)
        event = add_anchor(session, at, [contact], **anchor)
        plan_now(session, scheduler, event.id, settings=settings, now=NOW)
        day_before, two_hours = notices(session, event)
        # The all-day event's reminders land on its own zone's clock, the others on the contact's.
        local = ZoneInfo(event.timezone or zone)
        assert f"{two_hours.send_at.astimezone(local):%H:%M}" == moved
        sent = [
            fire_at(monkeypatch, engine, settings, n, n.send_at) for n in (day_before, two_hours)
        ]
        # The day before, the seeded policy asks for an answer and says how to give it.
        assert sent == [expected[0] + ASKS[language], expected[1]]


ASKS = {
    "bg": " Отговорете 1 за потвърждение, 2 за отказ.",
    "en": " Reply 1 to confirm, 2 to cancel.",
}


def test_a_late_reminder_says_when_from_the_time_it_really_goes(
    engine: Engine,
    settings: Settings,
    scheduler: NoticeScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100010")
        event = add_anchor(session, THURSDAY.replace(hour=7, minute=30), [ivan])
        plan_now(session, scheduler, event.id, settings=settings, now=NOW)
        two_hours = notices(session, event)[1]
        assert two_hours.send_at.astimezone(SOFIA) == datetime(2026, 12, 9, 20, 59, tzinfo=SOFIA)
        # The service was down until 00:30: the reminder goes out after midnight, on the day.
        patient = settings.model_copy(update={"late_grace": timedelta(hours=6)})
        sent = fire_at(monkeypatch, engine, patient, two_hours, THURSDAY.replace(minute=30))
        assert sent == "Напомняне: Dr. Petrova днес в 7:30, кабинет 5."


@pytest.mark.timeout(60)
def test_a_template_that_runs_away_fails_its_notice_with_the_reason(
    engine: Engine,
    settings: Settings,
    scheduler: NoticeScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with account_session(engine) as session:
        ivan = add_contact(session, "Иван", "+359888100011")
        event = add_anchor(session, THURSDAY.replace(hour=10), [ivan], data={"n": 999})
        plan_now(session, scheduler, event.id, settings=settings, now=NOW)
        day_before = notices(session, event)[0]
        # Saving checks templates on a sample; this one only runs away on the event's own data.
        day_before.text = (
            "{% for i in range(data.n) %}{% for j in range(data.n) %}{% endfor %}{% endfor %}x"
        )
        session.add(day_before)
        session.commit()
        monkeypatch.setattr(firing, "utcnow", lambda: day_before.send_at)
        sender = OutboxSender(settings, engine)
        assert fire(engine, sender, day_before.id, settings=settings) == "failed"
        session.expire_all()
        failed = session.get(Notice, day_before.id)
        assert failed is not None
        assert failed.status_reason == (
            f"the template went over its bounds: more than {MAX_STEPS} steps"
        )
        [attempt] = session.exec(select(Attempt).where(Attempt.notice_id == failed.id)).all()
        assert (attempt.error_code, attempt.status) == ("template", "failed")
