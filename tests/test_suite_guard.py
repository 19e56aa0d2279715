"""The suite does not depend on the hour it runs at.

A test that leaves quiet hours to the default used to pass by day and fail from 21:00 to 08:00
in Sofia. conftest gives every test quiet hours that cover all but one minute of the day, so
such a test now fails at any hour, the first time it runs, until it pins its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from reminders.settings import load_settings
from tests.conftest import ALWAYS_QUIET


def test_a_test_that_does_not_pin_quiet_hours_meets_them() -> None:
    quiet = load_settings().quiet_hours
    assert quiet is not None and str(quiet) == ALWAYS_QUIET
    for hour in range(24):
        assert quiet.contains(datetime(2026, 12, 1, hour, 30).time())


def test_the_settings_fixture_pins_them_off(client: TestClient, writer: dict[str, str]) -> None:
    # The shared fixture is for tests that are not about quiet hours: a bulk message goes now.
    response = client.post(
        "/api/v1/messages", headers=writer, json={"to": {"phones": ["0888 720 001"]}, "text": "x"}
    )
    assert response.status_code == 201, response.text
    [notice] = client.get(
        f"/api/v1/notices?message_id={response.json()['id']}", headers=writer
    ).json()["items"]
    assert datetime.fromisoformat(notice["send_at"]) <= datetime.now(UTC)
