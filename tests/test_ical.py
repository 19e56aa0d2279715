"""parse_feed and content_hash on small inline feeds; every datetime is checked exactly."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from reminders.sources.ical import (
    Attendee,
    FeedError,
    Occurrence,
    ParsedFeed,
    content_hash,
    parse_feed,
)

WINDOW_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_END = datetime(2028, 1, 1, tzinfo=UTC)


def ics(body: str, *, header: str = "") -> bytes:
    """A feed around an indented block of VEVENTs/VTIMEZONEs, with CRLF line endings."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN"]
    lines += textwrap.dedent(header).strip().splitlines()
    lines += textwrap.dedent(body).strip().splitlines()
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def event(uid: str, *props: str) -> str:
    """A VEVENT block with the given property lines."""
    return "\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *props, "END:VEVENT"]
    )


def parse(
    data: bytes,
    zone: str = "Europe/Sofia",
    *,
    window_start: datetime = WINDOW_START,
    window_end: datetime = WINDOW_END,
    max_per_series: int = 500,
    max_total: int = 20_000,
) -> ParsedFeed:
    return parse_feed(
        data,
        zone=zone,
        window_start=window_start,
        window_end=window_end,
        max_per_series=max_per_series,
        max_total=max_total,
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def starts(feed: ParsedFeed) -> list[datetime]:
    return [o.start for o in feed.occurrences]


def only(feed: ParsedFeed) -> Occurrence:
    assert len(feed.occurrences) == 1, feed.occurrences
    return feed.occurrences[0]


# 1
def test_plain_events_in_a_named_zone_and_in_utc() -> None:
    feed = parse(
        ics(
            event(
                "sofia",
                "DTSTART;TZID=Europe/Sofia:20261215T100000",
                "DTEND;TZID=Europe/Sofia:20261215T113000",
                "SUMMARY:Dentist",
                "LOCATION:Vitosha Blvd 1\\, Sofia",
                "DESCRIPTION:Bring the card",
            )
            + "\n"
            + event(
                "zulu",
                "DTSTART:20261216T100000Z",
                "DTEND:20261216T110000Z",
                "RRULE:FREQ=DAILY;COUNT=1",
                "SUMMARY:Call",
            )
        )
    )
    dentist, call = feed.occurrences
    assert dentist == Occurrence(
        uid="sofia",
        recurrence_id="",  # a one-off event is keyed by its UID alone
        title="Dentist",
        start=utc(2026, 12, 15, 8, 0),
        end=utc(2026, 12, 15, 9, 30),
        all_day=False,
        location="Vitosha Blvd 1, Sofia",
        description="Bring the card",
        attendees=(),
        alarms=(),
    )
    assert dentist.key == "sofia|"
    assert (call.start, call.end, call.recurrence_id) == (
        utc(2026, 12, 16, 10),
        utc(2026, 12, 16, 11),
        "2026-12-16T10:00:00Z",
    )
    assert feed.warnings == ()
    assert feed.calendar_zone == "Europe/Sofia"


def test_an_event_without_an_end_has_none() -> None:
    feed = parse(ics(event("a", "DTSTART:20261216T100000Z", "SUMMARY:Point")))
    assert only(feed).end is None


# 2
def test_rrule_with_exdate_and_rdate() -> None:
    feed = parse(
        ics(
            event(
                "daily",
                "DTSTART;TZID=Europe/Sofia:20261201T100000",
                "DTEND;TZID=Europe/Sofia:20261201T103000",
                "RRULE:FREQ=DAILY;COUNT=5",
                "EXDATE;TZID=Europe/Sofia:20261203T100000",
                "RDATE;TZID=Europe/Sofia:20261210T150000",
                "SUMMARY:Standup",
            )
        )
    )
    assert starts(feed) == [
        utc(2026, 12, 1, 8),
        utc(2026, 12, 2, 8),
        utc(2026, 12, 4, 8),
        utc(2026, 12, 5, 8),
        utc(2026, 12, 10, 13),
    ]
    assert [o.end for o in feed.occurrences][-1] == utc(2026, 12, 10, 13, 30)
    assert feed.occurrences[-1].recurrence_id == "2026-12-10T13:00:00Z"


# 3
def test_moved_instance_appears_once_at_the_new_time_keyed_by_the_original_start() -> None:
    feed = parse(
        ics(
            event(
                "weekly",
                "DTSTART;TZID=Europe/Sofia:20261201T100000",
                "DTEND;TZID=Europe/Sofia:20261201T110000",
                "RRULE:FREQ=WEEKLY;COUNT=3",
                "SUMMARY:Lesson",
            )
            + "\n"
            + event(
                "weekly",
                "RECURRENCE-ID;TZID=Europe/Sofia:20261208T100000",
                "DTSTART;TZID=Europe/Sofia:20261209T140000",
                "DTEND;TZID=Europe/Sofia:20261209T150000",
                "SUMMARY:Lesson (moved)",
            )
        )
    )
    assert [(o.start, o.recurrence_id, o.title) for o in feed.occurrences] == [
        (utc(2026, 12, 1, 8), "2026-12-01T08:00:00Z", "Lesson"),
        (utc(2026, 12, 9, 12), "2026-12-08T08:00:00Z", "Lesson (moved)"),
        (utc(2026, 12, 15, 8), "2026-12-15T08:00:00Z", "Lesson"),
    ]


def test_this_and_future_override_moves_later_instances_but_keeps_their_keys() -> None:
    feed = parse(
        ics(
            event(
                "tf",
                "DTSTART;TZID=Europe/Sofia:20261201T100000",
                "DTEND;TZID=Europe/Sofia:20261201T110000",
                "RRULE:FREQ=WEEKLY;COUNT=4",
                "SUMMARY:Class",
            )
            + "\n"
            + event(
                "tf",
                "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Sofia:20261215T100000",
                "DTSTART;TZID=Europe/Sofia:20261215T120000",
                "DTEND;TZID=Europe/Sofia:20261215T130000",
                "SUMMARY:Class (later)",
            )
        )
    )
    assert [(o.start, o.recurrence_id) for o in feed.occurrences] == [
        (utc(2026, 12, 1, 8), "2026-12-01T08:00:00Z"),
        (utc(2026, 12, 8, 8), "2026-12-08T08:00:00Z"),
        (utc(2026, 12, 15, 10), "2026-12-15T08:00:00Z"),
        (utc(2026, 12, 22, 10), "2026-12-22T08:00:00Z"),
    ]


# 4
def test_cancelled_instance_is_dropped() -> None:
    feed = parse(
        ics(
            event(
                "w",
                "DTSTART:20261201T090000Z",
                "RRULE:FREQ=WEEKLY;COUNT=3",
                "SUMMARY:Gym",
            )
            + "\n"
            + event(
                "w",
                "RECURRENCE-ID:20261208T090000Z",
                "DTSTART:20261208T090000Z",
                "STATUS:CANCELLED",
                "SUMMARY:Gym",
            )
        )
    )
    assert starts(feed) == [utc(2026, 12, 1, 9), utc(2026, 12, 15, 9)]


def test_cancelled_series_yields_nothing() -> None:
    feed = parse(
        ics(
            event(
                "gone",
                "DTSTART:20261201T090000Z",
                "RRULE:FREQ=DAILY;COUNT=3",
                "STATUS:CANCELLED",
            )
            + "\n"
            + event("gone", "RECURRENCE-ID:20261202T090000Z", "DTSTART:20261202T100000Z")
        )
    )
    assert feed.occurrences == ()


def test_one_off_event_keeps_its_key_when_moved() -> None:
    before = only(parse(ics(event("once", "DTSTART:20261215T100000Z"))))
    after = only(parse(ics(event("once", "DTSTART:20261217T150000Z"))))
    assert (before.key, after.key) == ("once|", "once|")
    assert after.start == utc(2026, 12, 17, 15)


# 5
def test_all_day_event_starts_at_local_midnight() -> None:
    feed = parse(
        ics(
            event(
                "winter",
                "DTSTART;VALUE=DATE:20261215",
                "DTEND;VALUE=DATE:20261216",
                "RRULE:FREQ=YEARLY;COUNT=1",
                "SUMMARY:Name day",
            )
            + "\n"
            + event("summer", "DTSTART;VALUE=DATE:20260701", "SUMMARY:Holiday")
        )
    )
    summer, winter = feed.occurrences
    assert (summer.start, summer.end, summer.all_day, summer.recurrence_id) == (
        utc(2026, 6, 30, 21),
        None,
        True,
        "",
    )
    assert (winter.start, winter.end, winter.recurrence_id) == (
        utc(2026, 12, 14, 22),
        utc(2026, 12, 15, 22),
        "2026-12-15",
    )


# 6
@pytest.mark.parametrize(
    ("zone", "expected"),
    [("Europe/Sofia", utc(2026, 12, 15, 8)), ("America/New_York", utc(2026, 12, 15, 15))],
)
def test_floating_time_is_read_in_the_zone_argument(zone: str, expected: datetime) -> None:
    feed = parse(ics(event("f", "DTSTART:20261215T100000")), zone=zone)
    assert only(feed).start == expected
    assert feed.calendar_zone == zone


def test_floating_until_is_read_in_the_same_zone() -> None:
    # Read as UTC, UNTIL 10:00 would be 05:00 in New York and lose the last Tuesday.
    feed = parse(
        ics(
            event(
                "f",
                "DTSTART:20261201T100000",
                "RRULE:FREQ=WEEKLY;UNTIL=20261215T100000",
            )
        ),
        zone="America/New_York",
    )
    assert starts(feed) == [utc(2026, 12, 1, 15), utc(2026, 12, 8, 15), utc(2026, 12, 15, 15)]


# 7
def test_google_x_wr_timezone_keeps_local_time_of_utc_series_across_dst() -> None:
    feed = parse(
        ics(
            event("g", "DTSTART:20270315T080000Z", "RRULE:FREQ=WEEKLY;COUNT=4")
            + "\n"
            + event("floating", "DTSTART:20270601T100000"),
            header="X-WR-TIMEZONE:Europe/Sofia",
        ),
        zone="America/New_York",
    )
    assert feed.calendar_zone == "Europe/Sofia"
    assert starts(feed) == [
        utc(2027, 3, 15, 8),
        utc(2027, 3, 22, 8),
        utc(2027, 3, 29, 7),
        utc(2027, 4, 5, 7),
        utc(2027, 6, 1, 7),
    ]
    assert feed.occurrences[2].recurrence_id == "2027-03-29T07:00:00Z"


def test_invalid_x_wr_timezone_is_ignored_with_a_warning() -> None:
    feed = parse(
        ics(event("m", "DTSTART:20261215T100000"), header="X-WR-TIMEZONE:Mars/Olympus"),
        zone="Europe/Sofia",
    )
    assert only(feed).start == utc(2026, 12, 15, 8)
    assert feed.calendar_zone == "Europe/Sofia"
    assert feed.warnings == ('X-WR-TIMEZONE "Mars/Olympus" is not a time zone; ignored',)


# 8
def test_outlook_fle_standard_time_is_sofias_zone() -> None:
    feed = parse(
        ics(
            event("w1", 'DTSTART;TZID="FLE Standard Time":20261215T100000')
            + "\n"
            + event("s1", 'DTSTART;TZID="FLE Standard Time":20270715T100000')
        )
    )
    assert starts(feed) == [utc(2026, 12, 15, 8), utc(2027, 7, 15, 7)]
    assert feed.warnings == ()


@pytest.mark.parametrize(
    ("windows_name", "january_utc_hour"),
    [
        ("GTB Standard Time", 8),  # Bucharest, +2
        ("E. Europe Standard Time", 8),  # Chisinau, +2
        ("W. Europe Standard Time", 9),  # Berlin, +1
        ("Central European Standard Time", 9),  # Warsaw, +1
        ("Romance Standard Time", 9),  # Paris, +1
        ("GMT Standard Time", 10),  # London, 0
        ("Eastern Standard Time", 15),  # New York, -5
        ("Pacific Standard Time", 18),  # Los Angeles, -8
    ],
)
def test_common_windows_zone_names(windows_name: str, january_utc_hour: int) -> None:
    feed = parse(ics(event("w", f'DTSTART;TZID="{windows_name}":20270115T100000')))
    assert only(feed).start == utc(2027, 1, 15, january_utc_hour)


# 9
def custom_zone_feed(standard: str, daylight: str | None = None) -> bytes:
    """Outlook's "Customized Time Zone" with the given offsets (DST on US dates if any)."""
    zone = [
        "BEGIN:VTIMEZONE",
        "TZID:Customized Time Zone",
        "BEGIN:STANDARD",
        "DTSTART:16011104T020000",
        *(["RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11"] if daylight else []),
        f"TZOFFSETFROM:{daylight or standard}",
        f"TZOFFSETTO:{standard}",
        "END:STANDARD",
    ]
    if daylight:
        zone += [
            "BEGIN:DAYLIGHT",
            "DTSTART:16010311T020000",
            "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3",
            f"TZOFFSETFROM:{standard}",
            f"TZOFFSETTO:{daylight}",
            "END:DAYLIGHT",
        ]
    zone.append("END:VTIMEZONE")
    return ics(
        "\n".join(zone)
        + "\n"
        + event("c1", 'DTSTART;TZID="Customized Time Zone":20270115T100000')
        + "\n"
        + event("c2", 'DTSTART;TZID="Customized Time Zone":20270715T100000')
    )


def test_custom_vtimezone_rules_are_followed() -> None:
    feed = parse(custom_zone_feed("-0500", "-0400"))
    assert starts(feed) == [utc(2027, 1, 15, 15), utc(2027, 7, 15, 14)]


def test_custom_vtimezones_with_the_same_tzid_do_not_leak_between_feeds() -> None:
    # icalendar caches VTIMEZONEs process-wide by TZID and never replaces an entry.
    a, b = custom_zone_feed("+0200"), custom_zone_feed("-0500")
    assert starts(parse(a)) == [utc(2027, 1, 15, 8), utc(2027, 7, 15, 8)]
    assert starts(parse(b)) == [utc(2027, 1, 15, 15), utc(2027, 7, 15, 15)]
    assert starts(parse(a)) == [utc(2027, 1, 15, 8), utc(2027, 7, 15, 8)]


def test_vtimezone_after_the_events_that_use_it() -> None:
    parse(custom_zone_feed("+0200"))  # leave a different definition in icalendar's cache
    data = ics(
        event("late", 'DTSTART;TZID="Customized Time Zone":20270115T100000')
        + "\n"
        + "\n".join(
            [
                "BEGIN:VTIMEZONE",
                "TZID:Customized Time Zone",
                "BEGIN:STANDARD",
                "DTSTART:16010101T000000",
                "TZOFFSETFROM:+0530",
                "TZOFFSETTO:+0530",
                "END:STANDARD",
                "END:VTIMEZONE",
            ]
        )
    )
    assert only(parse(data)).start == utc(2027, 1, 15, 4, 30)


def test_unknown_tzid_is_read_in_the_calendar_zone_with_a_warning() -> None:
    feed = parse(ics(event("u", "DTSTART;TZID=Atlantis/Capital:20261215T100000")))
    assert only(feed).start == utc(2026, 12, 15, 8)
    assert feed.warnings == (
        'time zone "Atlantis/Capital" is unknown; its times are read in Europe/Sofia',
    )


# 10
def test_weekly_event_keeps_local_time_across_dst() -> None:
    feed = parse(
        ics(
            event(
                "dst",
                "DTSTART;TZID=Europe/Sofia:20270315T100000",
                "DTEND;TZID=Europe/Sofia:20270315T110000",
                "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20270405T070000Z",
            )
        )
    )
    assert starts(feed) == [
        utc(2027, 3, 15, 8),
        utc(2027, 3, 22, 8),
        utc(2027, 3, 29, 7),
        utc(2027, 4, 5, 7),
    ]
    assert [o.end for o in feed.occurrences] == [
        utc(2027, 3, 15, 9),
        utc(2027, 3, 22, 9),
        utc(2027, 3, 29, 8),
        utc(2027, 4, 5, 8),
    ]


# 11
@pytest.mark.timeout(60)
def test_secondly_series_from_years_ago_is_capped_without_expanding_it_all() -> None:
    # Six years of seconds before the window: dateutil alone would walk ~190 million.
    feed = parse(
        ics(event("spam", "DTSTART:20200101T000000Z", "RRULE:FREQ=SECONDLY", "SUMMARY:Spam"))
    )
    assert len(feed.occurrences) == 500
    assert feed.occurrences[0].start == WINDOW_START
    assert feed.occurrences[-1].start == WINDOW_START + timedelta(seconds=499)
    assert feed.occurrences[0].recurrence_id == "2026-01-01T00:00:00Z"
    assert feed.warnings == ('series "Spam" capped at 500 occurrences',)


@pytest.mark.timeout(60)
def test_minutely_series_are_capped_per_feed() -> None:
    feed = parse(
        ics(
            event("a", "DTSTART:20251231T000000Z", "RRULE:FREQ=MINUTELY", "SUMMARY:A")
            + "\n"
            + event("b", "DTSTART:20251231T000030Z", "RRULE:FREQ=MINUTELY", "SUMMARY:B")
        ),
        max_per_series=1_000,
        max_total=300,
    )
    assert len(feed.occurrences) == 300
    assert [o.uid for o in feed.occurrences[:4]] == ["a", "b", "a", "b"]
    assert feed.occurrences[-1].start == WINDOW_START + timedelta(minutes=149, seconds=30)
    assert feed.warnings == ("feed capped at 300 occurrences",)


@pytest.mark.timeout(60)
def test_dense_series_with_a_huge_count() -> None:
    unfiltered = event(
        "count", "DTSTART:20200101T000000Z", "RRULE:FREQ=SECONDLY;COUNT=999999999", "SUMMARY:C"
    )
    filtered = event(
        "filtered",
        "DTSTART:20200101T000000Z",
        "RRULE:FREQ=SECONDLY;COUNT=999999999;BYMINUTE=5",
        "SUMMARY:F",
    )
    ended = event("ended", "DTSTART:20200101T000000Z", "RRULE:FREQ=MINUTELY;COUNT=10000")
    feed = parse(ics("\n".join([unfiltered, filtered, ended])), max_per_series=10)
    assert starts(feed) == [WINDOW_START + timedelta(seconds=s) for s in range(10)]
    assert feed.warnings == (
        'series "F" repeats too densely to expand; skipped',
        'series "C" capped at 10 occurrences',
    )


def test_count_beyond_the_year_9999_is_as_good_as_endless() -> None:
    rule = "RRULE:FREQ=HOURLY;COUNT=2147483647"  # the last one would be 245,000 years away
    feed = parse(ics(event("e", "DTSTART:20200101T000000Z", rule)), max_per_series=3)
    assert starts(feed) == [WINDOW_START + timedelta(hours=h) for h in range(3)]


def test_long_occurrences_are_not_repeated_across_expansion_slices() -> None:
    feed = parse(
        ics(
            event(
                "long",
                "DTSTART:20251201T000000Z",
                "DTEND:20251201T030000Z",
                "RRULE:FREQ=HOURLY",
            )
        ),
        window_end=WINDOW_START + timedelta(days=4),
    )
    assert starts(feed) == [WINDOW_START + timedelta(hours=h) for h in range(96)]


# 12
def test_alarms_relative_to_start_on_timed_and_all_day_events() -> None:
    alarm = ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT30M", "END:VALARM"]
    feed = parse(
        ics(
            event("timed", "DTSTART:20261215T100000Z", *alarm)
            + "\n"
            + event("allday", "DTSTART;VALUE=DATE:20261216", *alarm)
        )
    )
    assert [o.alarms for o in feed.occurrences] == [
        (timedelta(minutes=-30),),
        (timedelta(minutes=-30),),
    ]


def test_alarms_related_to_end_and_absolute_ones_become_offsets_from_start() -> None:
    feed = parse(
        ics(
            event(
                "r",
                "DTSTART:20261215T100000Z",
                "DTEND:20261215T120000Z",
                "RRULE:FREQ=DAILY;COUNT=2",
                "BEGIN:VALARM",
                "ACTION:DISPLAY",
                "TRIGGER;RELATED=END:-PT15M",
                "END:VALARM",
                "BEGIN:VALARM",
                "ACTION:EMAIL",
                "TRIGGER;VALUE=DATE-TIME:20261215T090000Z",
                "END:VALARM",
            )
        )
    )
    first, second = feed.occurrences
    assert first.alarms == (timedelta(hours=-1), timedelta(hours=1, minutes=45))
    assert second.alarms == (timedelta(hours=-25), timedelta(hours=1, minutes=45))


# 13
def test_attendees_by_mailto_and_tel() -> None:
    feed = parse(
        ics(
            event(
                "att",
                "DTSTART:20261215T100000Z",
                "ATTENDEE;CN=Ivan;ROLE=REQ-PARTICIPANT:mailto:ivan@example.bg",
                "ATTENDEE:tel:+359888123456",
                'ATTENDEE;CN="Petrova, Maria":MAILTO:maria@example.bg',
            )
        )
    )
    assert only(feed).attendees == (
        Attendee(name="Ivan", email="ivan@example.bg", phone=None),
        Attendee(name=None, email=None, phone="+359888123456"),
        Attendee(name="Petrova, Maria", email="maria@example.bg", phone=None),
    )


# 14
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The calendar feed is empty."),
        (b"  \r\n", "The calendar feed is empty."),
        (
            b"<!DOCTYPE html><html><body>Sign in</body></html>",
            "The address returned a web page, not an iCalendar feed.",
        ),
        (
            b"hello world\nthis is not a calendar",
            "The data is not an iCalendar feed (it must start with BEGIN:VCALENDAR).",
        ),
        (
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nthis line has no colon\r\nEND:VCALENDAR\r\n",
            "The iCalendar feed is malformed and could not be read.",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
            "The iCalendar feed is incomplete (it has no END:VCALENDAR).",
        ),
    ],
)
def test_not_a_feed(data: bytes, message: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse(data)
    assert str(caught.value) == message


def test_feed_without_events_is_empty_not_an_error() -> None:
    feed = parse(ics("BEGIN:VTODO\nUID:t\nSUMMARY:Not an event\nEND:VTODO"))
    assert feed == ParsedFeed(
        occurrences=(), warnings=(), calendar_zone="Europe/Sofia", refresh_hint=None
    )


def test_broken_event_is_skipped_and_the_rest_kept() -> None:
    feed = parse(
        ics(
            event("bad", "DTSTART:2026XX", "SUMMARY:Broken")
            + "\n"
            + event("good", "DTSTART:20261215T100000Z", "SUMMARY:Fine")
        )
    )
    assert only(feed).uid == "good"
    assert feed.warnings == ('event "Broken" has no valid start; skipped',)


def test_unreadable_rrule_skips_its_series_with_a_warning() -> None:
    feed = parse(
        ics(
            event("odd", "DTSTART:20261215T100000Z", "RRULE:FREQ=SOMETIMES", "SUMMARY:Odd")
            + "\n"
            + event("good", "DTSTART:20261215T100000Z", "SUMMARY:Fine")
        )
    )
    assert only(feed).uid == "good"
    assert len(feed.warnings) == 1
    assert feed.warnings[0].startswith('series "Odd" could not be read')


def test_event_without_uid_gets_the_same_key_every_sync() -> None:
    data = ics("BEGIN:VEVENT\nDTSTART:20261215T100000Z\nSUMMARY:Orphan\nEND:VEVENT")
    first, second = only(parse(data)), only(parse(data))
    assert first.key == second.key
    assert first.uid.startswith("no-uid-")


def test_windows_1252_feed_is_read() -> None:
    data = ics(event("enc", "DTSTART:20261215T100000Z", "SUMMARY:Caf\u00e9")).replace(
        "Café".encode(), "Café".encode("cp1252")
    )
    assert only(parse(data)).title == "Café"


# 15
def test_content_hash_ignores_dtstamp_only() -> None:
    base = ics(event("h", "DTSTART:20261215T100000Z", "SUMMARY:Same"))
    restamped = base.replace(b"DTSTAMP:20260101T000000Z", b"DTSTAMP:20260917T123456Z")
    folded = base.replace(b"DTSTAMP:20260101T000000Z", b"DTSTAMP:2026\r\n 0917T123456Z")
    renamed = base.replace(b"SUMMARY:Same", b"SUMMARY:Different")
    assert restamped != base
    assert content_hash(restamped) == content_hash(base)
    assert content_hash(folded) == content_hash(base)
    assert content_hash(renamed) != content_hash(base)
    assert len(content_hash(base)) == 64


# 16
@pytest.mark.parametrize(
    ("header", "hint"),
    [
        ("REFRESH-INTERVAL;VALUE=DURATION:PT1H\nX-PUBLISHED-TTL:PT30M", timedelta(hours=1)),
        ("X-PUBLISHED-TTL:PT30M", timedelta(minutes=30)),
        ("X-PUBLISHED-TTL:soon", None),
        ("", None),
    ],
)
def test_refresh_hint(header: str, hint: timedelta | None) -> None:
    assert parse(ics("", header=header)).refresh_hint == hint


# 17
def test_only_occurrences_starting_inside_the_window_sorted_by_start() -> None:
    start, end = utc(2026, 12, 1), utc(2026, 12, 2)
    feed = parse(
        ics(
            "\n".join(
                [
                    event("late", "DTSTART:20261201T200000Z"),
                    event("at-end", "DTSTART:20261202T000000Z"),
                    event("ongoing", "DTSTART:20261130T230000Z", "DTEND:20261201T010000Z"),
                    event("at-start", "DTSTART:20261201T000000Z"),
                    event("early", "DTSTART:20261201T060000Z"),
                ]
            )
        ),
        window_start=start,
        window_end=end,
    )
    assert [o.uid for o in feed.occurrences] == ["at-start", "early", "late"]
    assert starts(feed) == [utc(2026, 12, 1), utc(2026, 12, 1, 6), utc(2026, 12, 1, 20)]


def test_all_day_event_at_the_window_edges() -> None:
    # Sofia's 15 December starts at 22:00 UTC on the 14th, inside a window ending at 23:00;
    # New York's starts at 05:00 UTC on the 15th, after a window starting at 04:00.
    allday = ics(event("d", "DTSTART;VALUE=DATE:20261215", "DTEND;VALUE=DATE:20261215"))
    sofia = parse(allday, window_start=utc(2026, 12, 14, 12), window_end=utc(2026, 12, 14, 23))
    assert starts(sofia) == [utc(2026, 12, 14, 22)]
    new_york = parse(
        allday,
        zone="America/New_York",
        window_start=utc(2026, 12, 15, 4),
        window_end=utc(2026, 12, 15, 6),
    )
    assert starts(new_york) == [utc(2026, 12, 15, 5)]


def test_naive_window_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_feed(
            ics(""),
            zone="Europe/Sofia",
            window_start=datetime(2026, 1, 1),
            window_end=WINDOW_END,
        )
