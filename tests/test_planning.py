"""Planning send times: pure, so every case is exact datetimes in, exact datetimes out."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from reminders import durations, wall_clock
from reminders.durations import Offset
from reminders.scheduler import planning
from reminders.scheduler.planning import Planned, Step, plan
from reminders.wall_clock import QuietHours, parse_time

SOFIA = ZoneInfo("Europe/Sofia")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(time(21, 0), time(8, 0))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def sofia(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SOFIA, fold=fold)


def step(offset: str, at: str | None = None, kind: str | None = None) -> Step:
    return Step(Offset.parse(offset), parse_time(at) if at else None, kind)


APPOINTMENT = [step("-P1D", "18:00"), step("-PT2H")]
BILL = [
    step("-P3D", "10:00", "bill_due"),
    step("P0D", "10:00", "bill_due"),
    step("P3D", "10:00", "bill_overdue"),
    step("P10D", "10:00", "bill_overdue"),
]
LONG_AGO = sofia(2020, 1, 1)


def send_times(results: list[Planned]) -> list[datetime | None]:
    return [r.send_at for r in results]


def one(
    anchor: datetime,
    offset: str,
    at: str | None = None,
    *,
    kind: str | None = None,
    zone: ZoneInfo = SOFIA,
    now: datetime = LONG_AGO,
    default_kind: str = "event_reminder",
    quiet: QuietHours | None = None,
    transactional: bool = False,
) -> Planned:
    [result] = plan(
        anchor,
        [step(offset, at, kind)],
        zone=zone,
        now=now,
        default_kind=default_kind,
        quiet=quiet,
        transactional=transactional,
    )
    return result


# --- Offset ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "exact"),
    [
        ("-P1D", -1, timedelta(0)),
        ("-PT2H", 0, timedelta(hours=-2)),
        ("P3D", 3, timedelta(0)),
        ("P1DT12H", 1, timedelta(hours=12)),
        ("-P1W", -7, timedelta(0)),
        ("P1W2D", 9, timedelta(0)),
        ("PT30M", 0, timedelta(minutes=30)),
        ("+P10D", 10, timedelta(0)),
        ("P0D", 0, timedelta(0)),
        ("PT0S", 0, timedelta(0)),
        ("PT36H", 0, timedelta(hours=36)),
        ("-P1DT2H30M15S", -1, -timedelta(hours=2, minutes=30, seconds=15)),
        (" -p1d ", -1, timedelta(0)),
    ],
)
def test_offset_parse_valid(text: str, days: int, exact: timedelta) -> None:
    assert Offset.parse(text) == Offset(days, exact)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("-P1D", "-P1D"),
        ("-PT2H", "-PT2H"),
        ("P1DT12H", "P1DT12H"),
        ("+P10D", "P10D"),
        ("-P1W", "-P7D"),
        ("P0D", "PT0S"),
        ("-PT0S", "PT0S"),
        ("PT90M", "PT1H30M"),
        ("PT36H", "PT36H"),  # 36 hours is not "P1DT12H": a day is calendar, hours are elapsed
        ("-P1DT2H30M15S", "-P1DT2H30M15S"),
        ("PT45S", "PT45S"),
    ],
)
def test_offset_str_is_canonical_and_round_trips(text: str, canonical: str) -> None:
    offset = Offset.parse(text)
    assert str(offset) == canonical
    assert Offset.parse(str(offset)) == offset


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "-P",
        "-",
        "1D",
        "D",
        "P1",
        "P1DT",
        "PT1.5H",
        "P1D2H",
        "PT1H1D",
        "--P1D",
        "P-1D",
        "P1D-",
        "-1 day",
        "P1DT1H1H",
    ],
)
def test_offset_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        Offset.parse(text)


@pytest.mark.parametrize("text", ["P1M", "-P1M", "P1Y", "-P2Y3M", "P1Y2M3DT4H"])
def test_offset_refuses_months_and_years(text: str) -> None:
    with pytest.raises(ValueError, match="months and years have no fixed length; use days"):
        Offset.parse(text)


@pytest.mark.parametrize("text", ["P99999D", "-P523W", "PT99999999999999999999H"])
def test_offset_refuses_absurd_lengths(text: str) -> None:
    with pytest.raises(ValueError, match="cannot reach more than 3660 days"):
        Offset.parse(text)


def test_offset_constructor_checks() -> None:
    with pytest.raises(ValueError, match="same sign"):
        Offset(-1, timedelta(hours=2))
    with pytest.raises(ValueError, match="whole number of seconds"):
        Offset(0, timedelta(milliseconds=1))


# --- parse_time and QuietHours -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("18:00", time(18, 0)), ("09:05", time(9, 5)), ("9:05", time(9, 5)), ("00:00", time(0))],
)
def test_parse_time_valid(text: str, expected: time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "24:00", "18:60", "1800", "18:0", "18:00:00", "ab:cd", "-1:00", "18h"]
)
def test_parse_time_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21:00-08:00", QuietHours(time(21), time(8))),
        (" 22:30 - 07:00 ", QuietHours(time(22, 30), time(7))),
        ("12:00-14:00", QuietHours(time(12), time(14))),
        ("", None),
        ("off", None),
        ("OFF", None),
        ("none", None),
    ],
)
def test_quiet_hours_parse(text: str, expected: QuietHours | None) -> None:
    assert QuietHours.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["21:00", "21-08", "21:00-08:00-09:00", "25:00-08:00", "21:00-21:00", "nine-five"]
)
def test_quiet_hours_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


def test_quiet_hours_str() -> None:
    assert str(QuietHours(time(21), time(8))) == "21:00-08:00"


@pytest.mark.parametrize(
    ("t", "inside"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_quiet_hours_contains_wrapping(t: time, inside: bool) -> None:
    assert NIGHT.contains(t) is inside


@pytest.mark.parametrize(
    ("t", "inside"),
    [
        (time(11, 59), False),
        (time(12, 0), True),
        (time(13, 59), True),
        (time(14, 0), False),
        (time(23, 0), False),
        (time(0, 0), False),
    ],
)
def test_quiet_hours_contains_same_day(t: time, inside: bool) -> None:
    assert QuietHours(time(12), time(14)).contains(t) is inside


# --- default policies --------------------------------------------------------------------------


def test_appointment_policy() -> None:
    results = plan(
        sofia(2026, 12, 10, 10, 30),
        APPOINTMENT,
        zone=SOFIA,
        now=sofia(2026, 11, 25),
        default_kind="event_reminder",
        quiet=NIGHT,
    )
    assert results == [
        Planned(0, "event_reminder", utc(2026, 12, 9, 16, 0), "scheduled", None),
        Planned(1, "event_reminder", utc(2026, 12, 10, 6, 30), "scheduled", None),
    ]
    assert all(r.send_at is not None and r.send_at.tzinfo is UTC for r in results)


def test_bill_policy() -> None:
    results = plan(
        sofia(2026, 12, 15),  # all-day due date: local midnight
        BILL,
        zone=SOFIA,
        now=sofia(2026, 11, 25),
        default_kind="bill_due",
        quiet=NIGHT,
    )
    assert results == [
        Planned(0, "bill_due", utc(2026, 12, 12, 8), "scheduled", None),
        Planned(1, "bill_due", utc(2026, 12, 15, 8), "scheduled", None),
        Planned(2, "bill_overdue", utc(2026, 12, 18, 8), "scheduled", None),
        Planned(3, "bill_overdue", utc(2026, 12, 25, 8), "scheduled", None),
    ]


def test_step_without_kind_takes_the_default() -> None:
    assert one(sofia(2026, 12, 10), "-P1D", default_kind="message").kind == "message"
    assert one(sofia(2026, 12, 10), "-P1D", kind="bill_due").kind == "bill_due"


def test_no_steps_no_plan() -> None:
    assert plan(sofia(2026, 12, 10), [], zone=SOFIA, now=LONG_AGO, default_kind="message") == []


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan(datetime(2026, 12, 10), APPOINTMENT, zone=SOFIA, now=LONG_AGO, default_kind="m")
    with pytest.raises(ValueError, match="aware"):
        plan(
            sofia(2026, 12, 10), APPOINTMENT, zone=SOFIA, now=datetime(2026, 1, 1), default_kind="m"
        )


# --- DST in Europe/Sofia: 2027-03-28 03:00 -> 04:00, 2027-10-31 04:00 -> 03:00 -----------------


def test_spring_day_before_the_monday_after_the_change() -> None:
    anchor = sofia(2027, 3, 29, 10, 0)
    assert anchor.astimezone(UTC) == utc(2027, 3, 29, 7)
    assert one(anchor, "-P1D", "18:00").send_at == utc(2027, 3, 28, 15)
    # 10:00 local, summer time: also 07:00 UTC, exactly 24 hours earlier.
    assert one(anchor, "-P1D").send_at == utc(2027, 3, 28, 7)


def test_spring_day_before_keeps_the_wall_clock_across_the_change() -> None:
    anchor = sofia(2027, 3, 28, 10, 0)  # +03:00, 07:00 UTC
    result = one(anchor, "-P1D")
    assert result.send_at == utc(2027, 3, 27, 8)  # 10:00 +02:00
    assert anchor.astimezone(UTC) - result.send_at == timedelta(hours=23)
    assert result.send_at.astimezone(SOFIA).time() == time(10, 0)


def test_spring_two_real_hours_across_the_change() -> None:
    anchor = sofia(2027, 3, 28, 5, 0)
    assert anchor.astimezone(UTC) == utc(2027, 3, 28, 2)
    result = one(anchor, "-PT2H")
    assert result.send_at == utc(2027, 3, 28, 0)
    local = result.send_at.astimezone(SOFIA)
    assert (local.time(), local.utcoffset()) == (time(2, 0), timedelta(hours=2))


def test_spring_at_in_the_gap_moves_forward_by_the_gap() -> None:
    result = one(sofia(2027, 3, 29, 10), "-P1D", "03:30")
    assert result.send_at == utc(2027, 3, 28, 1, 30)
    local = result.send_at.astimezone(SOFIA)
    assert (local.time(), local.utcoffset()) == (time(4, 30), timedelta(hours=3))


def test_spring_days_landing_in_the_gap_move_forward() -> None:
    # 03:30 exists on the 29th but not on the 28th.
    assert one(sofia(2027, 3, 29, 3, 30), "-P1D").send_at == utc(2027, 3, 28, 1, 30)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("02:59", utc(2027, 3, 28, 0, 59)),
        ("03:00", utc(2027, 3, 28, 1, 0)),  # does not exist: 04:00 +03:00
        ("03:59", utc(2027, 3, 28, 1, 59)),  # does not exist: 04:59 +03:00
        ("04:00", utc(2027, 3, 28, 1, 0)),
    ],
)
def test_spring_at_around_the_gap(at: str, expected: datetime) -> None:
    assert one(sofia(2027, 3, 29, 10), "-P1D", at).send_at == expected


def test_autumn_at_in_the_repeated_hour_takes_the_first() -> None:
    result = one(sofia(2027, 11, 1, 10), "-P1D", "03:30")
    assert result.send_at == utc(2027, 10, 31, 0, 30)
    assert result.send_at.astimezone(SOFIA).utcoffset() == timedelta(hours=3)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("02:59", utc(2027, 10, 30, 23, 59)),
        ("03:00", utc(2027, 10, 31, 0, 0)),  # first of two 03:00s, +03:00
        ("03:59", utc(2027, 10, 31, 0, 59)),
        ("04:00", utc(2027, 10, 31, 2, 0)),  # +02:00
    ],
)
def test_autumn_at_around_the_repeated_hour(at: str, expected: datetime) -> None:
    assert one(sofia(2027, 11, 1, 10), "-P1D", at).send_at == expected


def test_autumn_day_before_keeps_the_wall_clock_across_the_change() -> None:
    anchor = sofia(2027, 10, 31, 10, 0)  # +02:00, 08:00 UTC
    result = one(anchor, "-P1D")
    assert result.send_at == utc(2027, 10, 30, 7)  # 10:00 +03:00
    assert anchor.astimezone(UTC) - result.send_at == timedelta(hours=25)
    assert one(sofia(2027, 11, 1, 10), "-P1D").send_at == utc(2027, 10, 31, 8)
    assert one(sofia(2027, 10, 31, 10), "-P1D", "18:00").send_at == utc(2027, 10, 30, 15)


def test_autumn_two_real_hours_across_the_change() -> None:
    anchor = sofia(2027, 10, 31, 5, 0)  # +02:00, 03:00 UTC
    result = one(anchor, "-PT2H")
    assert result.send_at == utc(2027, 10, 31, 1)
    local = result.send_at.astimezone(SOFIA)  # the second 03:00
    assert (local.time(), local.utcoffset()) == (time(3, 0), timedelta(hours=2))


def test_anchor_in_the_second_repeated_hour_is_kept() -> None:
    second = sofia(2027, 10, 31, 3, 30, fold=1)
    assert second.astimezone(UTC) == utc(2027, 10, 31, 1, 30)
    assert one(second, "P0D").send_at == utc(2027, 10, 31, 1, 30)
    assert one(second, "-PT0S").send_at == utc(2027, 10, 31, 1, 30)
    assert one(sofia(2027, 10, 31, 3, 30), "P0D").send_at == utc(2027, 10, 31, 0, 30)
    assert one(second, "-P1D").send_at == utc(2027, 10, 30, 0, 30)  # 03:30 +03:00
    assert one(second, "P7D").send_at == utc(2027, 11, 7, 1, 30)  # 03:30 +02:00
    # 2028-10-29 repeats 03:00-04:00 too: a whole number of days keeps the second occurrence.
    assert one(second, "P364D").send_at == utc(2028, 10, 29, 1, 30)
    assert one(sofia(2027, 10, 31, 3, 30), "P364D").send_at == utc(2028, 10, 29, 0, 30)


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        (sofia(2027, 3, 21, 10), utc(2027, 3, 21, 7)),  # winter, +02:00
        (sofia(2027, 3, 28, 10), utc(2027, 3, 28, 6)),  # summer, +03:00
        (sofia(2027, 10, 24, 10), utc(2027, 10, 24, 6)),  # summer
        (sofia(2027, 10, 31, 10), utc(2027, 10, 31, 7)),  # winter
    ],
)
def test_weekly_anchors_keep_the_local_time(anchor: datetime, expected: datetime) -> None:
    result = one(anchor, "-PT1H")
    assert result.send_at == expected
    assert result.send_at.astimezone(SOFIA).time() == time(9, 0)


# --- quiet hours -------------------------------------------------------------------------------

MOVED = "moved out of quiet hours 21:00-08:00"
APPOINTMENT_AT = sofia(2026, 12, 10, 10, 30)


def test_event_reminder_late_evening_moves_to_just_before_quiet_hours() -> None:
    result = one(APPOINTMENT_AT, "-P1D", "23:00", quiet=NIGHT)
    assert result == Planned(0, "event_reminder", utc(2026, 12, 9, 18, 59), "scheduled", MOVED)


def test_event_reminder_early_morning_moves_to_the_previous_evening() -> None:
    result = one(APPOINTMENT_AT, "-PT5H", quiet=NIGHT)  # 05:30
    assert result == Planned(0, "event_reminder", utc(2026, 12, 9, 18, 59), "scheduled", MOVED)


@pytest.mark.parametrize(
    ("offset", "at", "expected", "reason"),
    [
        ("-P1D", "20:59", utc(2026, 12, 9, 18, 59), None),
        ("-P1D", "21:00", utc(2026, 12, 9, 18, 59), MOVED),
        ("-PT2H31M", None, utc(2026, 12, 9, 18, 59), MOVED),  # 07:59
        ("-PT2H30M", None, utc(2026, 12, 10, 6, 0), None),  # 08:00
    ],
)
def test_event_reminder_window_edges(
    offset: str, at: str | None, expected: datetime, reason: str | None
) -> None:
    result = one(APPOINTMENT_AT, offset, at, quiet=NIGHT)
    assert (result.send_at, result.status, result.reason) == (expected, "scheduled", reason)


def test_bill_notice_at_night_moves_to_the_next_morning() -> None:
    due = sofia(2026, 12, 15)
    result = one(due, "-P1D", "22:00", kind="bill_due", quiet=NIGHT)
    assert result == Planned(0, "bill_due", utc(2026, 12, 15, 6), "scheduled", MOVED)


def test_bill_notice_early_morning_moves_to_the_same_morning() -> None:
    result = one(sofia(2026, 12, 15), "P0D", "05:00", kind="bill_due", quiet=NIGHT)
    assert result == Planned(0, "bill_due", utc(2026, 12, 15, 6), "scheduled", MOVED)


def test_message_moves_later() -> None:
    result = one(sofia(2026, 12, 15, 23), "PT0S", default_kind="message", quiet=NIGHT)
    assert result == Planned(0, "message", utc(2026, 12, 16, 6), "scheduled", MOVED)


def test_transactional_ignores_quiet_hours() -> None:
    event = one(APPOINTMENT_AT, "-P1D", "23:00", quiet=NIGHT, transactional=True)
    assert event == Planned(0, "event_reminder", utc(2026, 12, 9, 21), "scheduled", None)
    bill = one(
        sofia(2026, 12, 15), "-P1D", "22:00", kind="bill_due", quiet=NIGHT, transactional=True
    )
    assert bill == Planned(0, "bill_due", utc(2026, 12, 14, 20), "scheduled", None)


def test_no_quiet_hours_no_move() -> None:
    assert one(APPOINTMENT_AT, "-P1D", "23:00").send_at == utc(2026, 12, 9, 21)


def test_event_reminder_earlier_slot_exactly_now_is_still_used() -> None:
    result = one(APPOINTMENT_AT, "-PT5H", quiet=NIGHT, now=sofia(2026, 12, 9, 20, 59))
    assert (result.send_at, result.status) == (utc(2026, 12, 9, 18, 59), "scheduled")


def test_event_reminder_earlier_slot_half_a_minute_ago_is_past() -> None:
    now = datetime(2026, 12, 9, 20, 59, 30, tzinfo=SOFIA)
    result = one(APPOINTMENT_AT, "-PT5H", quiet=NIGHT, now=now)
    assert (result.send_at, result.status) == (utc(2026, 12, 10, 6), "scheduled")


def test_event_reminder_with_past_earlier_slot_moves_later_before_the_event() -> None:
    result = one(APPOINTMENT_AT, "-PT5H", quiet=NIGHT, now=sofia(2026, 12, 9, 22))
    assert result == Planned(0, "event_reminder", utc(2026, 12, 10, 6), "scheduled", MOVED)


@pytest.mark.parametrize("anchor", [sofia(2026, 12, 10, 7, 30), sofia(2026, 12, 10, 8, 0)])
def test_event_reminder_with_no_slot_before_the_event_expires(anchor: datetime) -> None:
    result = one(anchor, "-PT1H", quiet=NIGHT, now=sofia(2026, 12, 9, 22))
    assert result.status == "expired"
    assert result.send_at == anchor.astimezone(UTC) - timedelta(hours=1)
    assert result.reason is not None
    local = f"{anchor - timedelta(hours=1):%Y-%m-%d %H:%M} Europe/Sofia"
    assert local in result.reason
    assert "quiet hours 21:00-08:00" in result.reason
    assert "before the event" in result.reason


def test_same_day_window() -> None:
    lunch = QuietHours(time(12), time(14))
    event = one(sofia(2026, 12, 10, 15), "-PT2H", quiet=lunch)  # 13:00
    assert (event.send_at, event.reason) == (
        utc(2026, 12, 10, 9, 59),
        "moved out of quiet hours 12:00-14:00",
    )
    bill = one(sofia(2026, 12, 10, 15), "-PT2H", kind="bill_due", quiet=lunch)
    assert bill.send_at == utc(2026, 12, 10, 12)


def test_quiet_hours_are_on_the_recipients_clock() -> None:
    anchor = datetime(2026, 12, 10, 10, 30, tzinfo=NEW_YORK)
    result = one(anchor, "-P1D", "23:00", zone=NEW_YORK, quiet=NIGHT)
    assert result.send_at == utc(2026, 12, 10, 1, 59)  # 20:59 EST on the 9th


def test_moved_notice_can_still_expire() -> None:
    result = one(
        sofia(2026, 12, 15),
        "-P1D",
        "22:00",
        kind="bill_due",
        quiet=NIGHT,
        now=sofia(2026, 12, 15, 9),
    )
    assert result.status == "expired"
    assert result.send_at == utc(2026, 12, 15, 6)
    assert result.reason == (
        "its time 2026-12-15 08:00 Europe/Sofia (moved out of quiet hours 21:00-08:00)"
        " had passed when it was planned"
    )


# --- expiry ------------------------------------------------------------------------------------


def test_passed_step_expires_with_its_local_time() -> None:
    results = plan(
        APPOINTMENT_AT,
        APPOINTMENT,
        zone=SOFIA,
        now=sofia(2026, 12, 9, 19),
        default_kind="event_reminder",
    )
    assert results == [
        Planned(
            0,
            "event_reminder",
            utc(2026, 12, 9, 16),
            "expired",
            "its time 2026-12-09 18:00 Europe/Sofia had passed when it was planned",
        ),
        Planned(1, "event_reminder", utc(2026, 12, 10, 6, 30), "scheduled", None),
    ]


def test_step_due_exactly_now_is_scheduled() -> None:
    results = plan(
        APPOINTMENT_AT,
        APPOINTMENT,
        zone=SOFIA,
        now=utc(2026, 12, 9, 16),
        default_kind="event_reminder",
    )
    assert [r.status for r in results] == ["scheduled", "scheduled"]


def test_mixed_results_keep_step_order() -> None:
    results = plan(
        sofia(2026, 12, 15), BILL, zone=SOFIA, now=sofia(2026, 12, 16), default_kind="bill_due"
    )
    assert [(r.step, r.kind, r.status) for r in results] == [
        (0, "bill_due", "expired"),
        (1, "bill_due", "expired"),
        (2, "bill_overdue", "scheduled"),
        (3, "bill_overdue", "scheduled"),
    ]
    assert send_times(results) == [
        utc(2026, 12, 12, 8),
        utc(2026, 12, 15, 8),
        utc(2026, 12, 18, 8),
        utc(2026, 12, 25, 8),
    ]
    assert results[0].reason is not None and "2026-12-12 10:00 Europe/Sofia" in results[0].reason


# --- other zones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (SOFIA, [utc(2026, 12, 9, 16), utc(2026, 12, 10, 6, 30)]),
        (LONDON, [utc(2026, 12, 9, 18), utc(2026, 12, 10, 8, 30)]),
        (NEW_YORK, [utc(2026, 12, 9, 23), utc(2026, 12, 10, 13, 30)]),
    ],
)
def test_other_zones_keep_their_own_wall_clock(zone: ZoneInfo, expected: list[datetime]) -> None:
    anchor = datetime(2026, 12, 10, 10, 30, tzinfo=zone)
    results = plan(anchor, APPOINTMENT, zone=zone, now=LONG_AGO, default_kind="event_reminder")
    assert send_times(results) == expected
    assert [r.send_at.astimezone(zone).time() for r in results if r.send_at] == [
        time(18, 0),
        time(8, 30),
    ]


def test_anchor_in_another_zone_is_read_on_the_recipients_clock() -> None:
    # 03:30 in New York is 10:30 in Sofia; the Sofia recipient gets Sofia wall-clock times.
    anchor = datetime(2026, 12, 10, 3, 30, tzinfo=NEW_YORK)
    for given in (anchor, anchor.astimezone(UTC)):
        results = plan(given, APPOINTMENT, zone=SOFIA, now=LONG_AGO, default_kind="event_reminder")
        assert send_times(results) == [utc(2026, 12, 9, 16), utc(2026, 12, 10, 6, 30)]


def test_new_york_day_before_across_its_own_change() -> None:
    # New York springs forward on 2027-03-14: the day before is 23 real hours.
    anchor = datetime(2027, 3, 14, 10, tzinfo=NEW_YORK)  # EDT, 14:00 UTC
    assert one(anchor, "-P1D", zone=NEW_YORK).send_at == utc(2027, 3, 13, 15)  # 10:00 EST


# --- purity ------------------------------------------------------------------------------------


def test_module_reads_no_clock() -> None:
    for module in (planning, durations, wall_clock):
        source = inspect.getsource(module)
        for call in (".now(", "utcnow", ".today(", "time.time", "monotonic"):
            assert call not in source, module.__name__
