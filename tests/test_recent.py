"""Answers kept for a short while (the control panel's monthly reports)."""

from __future__ import annotations

from reminders.panel.recent import Recent


def test_a_value_is_kept_for_its_time_then_made_again() -> None:
    now = [100.0]
    made: list[str] = []

    def make(value: str) -> str:
        made.append(value)
        return value

    recent: Recent[str] = Recent(keep_for=60.0, clock=lambda: now[0])
    assert recent.get("march", lambda: make("first")) == "first"
    now[0] += 59.9
    assert recent.get("march", lambda: make("second")) == "first"  # still fresh: not made
    now[0] += 0.2
    assert recent.get("march", lambda: make("third")) == "third"  # a minute old: made again
    assert recent.get("april", lambda: make("april")) == "april"  # each key its own
    assert made == ["first", "third", "april"]


def test_the_oldest_keys_go_past_the_most_kept() -> None:
    recent: Recent[int] = Recent(keep_for=60.0, most=2, clock=lambda: 0.0)
    for key in (1, 2, 3):
        recent.get(key, lambda k=key: k)  # type: ignore[misc]
    assert recent.get(1, lambda: -1) == -1  # dropped: made again
    assert recent.get(3, lambda: -3) == 3  # kept
