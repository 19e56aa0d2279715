"""The credential of Kannel's inbound get-url, at the API: a token derived from the secret.

smsbox logs the get-url whole, so it carries ``inbound_token(secret)``, never the secret; the
secret itself (the get-url before tokens) is taken only while
REMINDERS_KANNEL_INBOUND_LEGACY_SECRET allows it. tests/test_kannel_inbound.py calls the route
through a real Kannel; tests/test_kannel_dlr.py shows the token signs no delivery report.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from reminders.api.routes import kannel_webhook
from reminders.api.routes.kannel_webhook import INBOUND_PATH, inbound_get_url
from reminders.process import Process
from reminders.settings import Settings, load_settings
from reminders.webhook_keys import DLR_URL, INBOUND_GET_URL, derived_key, inbound_token

SECRET = "inbound-secret-ü/%A&x"  # what Kannel would mangle: non-ASCII, "%A" (an escape), "&"
TOKEN = inbound_token(SECRET)
Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, quiet_hours="off", webhook_secret=SECRET)


@pytest.fixture(autouse=True)
def not_yet_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: the old get-url not yet logged."""
    monkeypatch.setattr(kannel_webhook, "_old_get_url_noted", False)


def allow_the_secret(process: Process) -> None:
    """REMINDERS_KANNEL_INBOUND_LEGACY_SECRET=true, as during an upgrade."""
    rt = process.runtime
    rt.settings = rt.settings.model_copy(update={"kannel_inbound_legacy_secret": True})


def stop_from(client: TestClient, phone: str, **credential: str) -> httpx.Response:
    """A STOP from ``phone`` as Kannel brings it, with the given token or secret."""
    params = {**credential, "from": phone, "to": "1234", "text": "STOP", "coding": 0}
    return client.get(INBOUND_PATH, params=params)


def kept(client: TestClient, writer: Headers) -> list[tuple[str, str]]:
    items = client.get("/api/v1/inbound", headers=writer).json()["items"]
    return [(item["from_phone"], item["action"]) for item in items]


def old_get_url_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == kannel_webhook.__name__ and record.levelno == logging.WARNING
    ]


def test_the_get_url_carries_a_token_derived_for_it_alone() -> None:
    url = inbound_get_url("https://sms.example.bg/r%C3%A9", SECRET)
    escapes = "&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"
    assert url.endswith(escapes)
    # Each "%" of ours is doubled; Kannel reads "%%" as one "%".
    assert url.removesuffix(escapes).replace("%%", "%") == (
        f"https://sms.example.bg/r%C3%A9{INBOUND_PATH}?token={TOKEN}"
    )
    assert "secret" not in url and quote(SECRET, safe="") not in url and SECRET not in url
    # URL-safe as it is (nothing for Kannel to expand), 256 bits.
    assert len(TOKEN) == 43 and TOKEN.replace("-", "").replace("_", "").isalnum()
    # kannel.conf keeps the get-url across releases: the derivation must never drift. (As
    # `printf 'reminders kannel inbound get-url v1' | openssl dgst -sha256 -hmac x -binary`
    # in URL-safe base64 without padding.)
    assert inbound_token("x") == "PZPFv1KyuOVQgcP0Vqb0gv_GMhrFEbrWSbEODDgSPMg"
    # One secret, one key per purpose, unrelated to each other and to the secret.
    assert derived_key(SECRET, INBOUND_GET_URL) != derived_key(SECRET, DLR_URL)
    assert inbound_token("another secret") != TOKEN


def test_the_token_brings_an_inbound_sms_in(client: TestClient, writer: Headers) -> None:
    response = stop_from(client, "+359888700001", token=TOKEN)
    assert (response.status_code, response.text) == (200, "")
    assert kept(client, writer) == [("+359888700001", "opt_out")]


def test_a_wrong_or_missing_token_is_refused(
    client: TestClient, writer: Headers, process: Process
) -> None:
    for wrong in ("guess", TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B"), "", SECRET):
        response = stop_from(client, "+359888700002", token=wrong)
        assert response.status_code == 403, wrong
        assert response.json()["detail"] == "the token does not match"
    # The token of another secret, and a token beside the right secret: the token decides.
    assert stop_from(client, "+359888700002", token=inbound_token("old")).status_code == 403
    allow_the_secret(process)
    assert stop_from(client, "+359888700002", token="guess", secret=SECRET).status_code == 403
    response = stop_from(client, "+359888700002")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "token", "message": response.json()["detail"].removeprefix("token: ")}
    ]
    assert response.json()["detail"].startswith("token: is required")
    assert kept(client, writer) == []


def test_the_secret_itself_is_refused_by_default_and_logged_once(
    client: TestClient, writer: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    # The same answer for the genuine secret and a guess: a secret read from an old smsbox log
    # learns nothing here.
    answers = [stop_from(client, "+359888700003", secret=s) for s in ("guess", SECRET, SECRET)]
    assert {(a.status_code, a.json()["detail"]) for a in answers} == {
        (
            403,
            "the secret itself is no longer taken: the get-url carries a token "
            "(`reminders kannel get-url` prints it)",
        )
    }
    assert kept(client, writer) == []
    # kannel.conf's get-url is the old one: the operator is told, once, never with the secret.
    [warning] = old_get_url_warnings(caplog)
    assert "reminders kannel get-url" in warning and "refused" in warning
    assert SECRET not in caplog.text and quote(SECRET, safe="") not in caplog.text


def test_the_secret_is_taken_while_the_legacy_setting_allows_it(
    client: TestClient, writer: Headers, process: Process, caplog: pytest.LogCaptureFixture
) -> None:
    allow_the_secret(process)
    wrong = stop_from(client, "+359888700004", secret="guess")
    assert (wrong.status_code, wrong.json()["detail"]) == (403, "the secret does not match")
    assert old_get_url_warnings(caplog) == []  # a guess is not kannel.conf's get-url
    for phone in ("+359888700004", "+359888700005"):
        response = stop_from(client, phone, secret=SECRET)
        assert (response.status_code, response.text) == (200, "")
    assert stop_from(client, "+359888700006", token=TOKEN).status_code == 200
    assert kept(client, writer) == [
        ("+359888700004", "opt_out"),
        ("+359888700005", "opt_out"),
        ("+359888700006", "opt_out"),
    ]
    [warning] = old_get_url_warnings(caplog)
    assert "REMINDERS_KANNEL_INBOUND_LEGACY_SECRET" in warning
    assert SECRET not in caplog.text


def test_not_found_without_a_webhook_secret(client: TestClient, process: Process) -> None:
    rt = process.runtime
    rt.settings = rt.settings.model_copy(update={"webhook_secret": None})
    response = stop_from(client, "+359888700007", token=inbound_token(""))
    assert response.status_code == 404
    assert response.json()["detail"] == "the kannel inbound messages are not configured"
