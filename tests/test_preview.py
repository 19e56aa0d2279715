"""POST /sms/preview: what an SMS will cost before it is sent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = dict[str, str]


def preview(client: TestClient, headers: Headers, **body: Any) -> Any:
    return client.post("/api/v1/sms/preview", json=body, headers=headers)


def test_cyrillic_costs_70_a_segment_and_transliteration_saves_it(
    client: TestClient, reader: Headers
) -> None:
    text = "Здравейте, часът ви при д-р Петрова в София е утре в 10:30 ч. Моля, потвърдете."
    cyrillic = preview(client, reader, text=text).json()
    assert cyrillic["encoding"] == "UCS-2" and cyrillic["segments"] == 2
    assert cyrillic["characters"] == len(text)
    assert "З" in cyrillic["ucs2_characters"]
    latin = preview(client, reader, text=text, transliterate=True).json()
    assert latin["encoding"] == "GSM-7" and latin["segments"] == 1
    assert latin["text"].startswith("Zdraveyte, chasat vi pri d-r Petrova v Sofia")


def test_lookalikes_are_replaced(client: TestClient, reader: Headers) -> None:
    body = preview(client, reader, text="Your bill\u00a0is due „today“ – 84.20 BGN…").json()
    assert body["text"] == 'Your bill is due "today" - 84.20 BGN...'
    assert body["encoding"] == "GSM-7"
    assert ["\u00a0", " "] in body["replaced"]


def test_a_template_renders_with_sample_values(client: TestClient, reader: Headers) -> None:
    body = preview(
        client,
        reader,
        template="Hi {{ name }}, see you at {{ time }} €",
        sample={"name": "Jo", "time": "10:30"},
    ).json()
    assert body["text"] == "Hi Jo, see you at 10:30 €"
    assert body["characters"] == 26  # the euro sign costs two septets


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "body", "either text or template"),
        ({"text": "a", "template": "b"}, "body", "either text or template"),
        ({"template": "{{ oops"}, "template", "line 1"),
        (
            {"template": "{{ name.__class__.__mro__ }}", "sample": {"name": 1}},
            "template",
            "sandbox",
        ),
        ({"text": ""}, "text", "at least 1"),
        ({"template": "{{ " + "(" * 200 + "1" + ")" * 200 + " }}"}, "template", "too deeply"),
    ],
)
def test_bad_previews(
    client: TestClient, reader: Headers, body: dict[str, Any], field: str, message: str
) -> None:
    response = preview(client, reader, **body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


def test_preview_needs_a_key(client: TestClient) -> None:
    assert client.post("/api/v1/sms/preview", json={"text": "x"}).status_code == 401


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
            "range of 99999",
        ),
        ("{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}x", "steps"),
        ("{{ 'x' * 999999999 }}", "characters"),
        ("{{ name * 999 }}", "at most 1600"),
    ],
)
def test_a_template_that_runs_away_is_a_422(
    client: TestClient, reader: Headers, template: str, message: str
) -> None:
    response = preview(client, reader, template=template, sample={"name": "Jo"})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "template" and message in error["message"], error


def test_unknown_names_are_refused_and_the_known_ones_listed(
    client: TestClient, reader: Headers
) -> None:
    response = preview(client, reader, template="{{ event.title }}")
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "template"
    assert error["message"].startswith("unknown name event; a template can use amount, contact,")
    typo = preview(client, reader, template="{{ name }}", sample={"nmae": "Jo"})
    assert typo.status_code == 422, typo.text
    assert typo.json()["errors"][0]["field"] == "sample.nmae"
    body = preview(client, reader, template="{{ when }}", sample={"when": "утре в 8:15"}).json()
    assert body["text"] == "утре в 8:15"
    assert {"name", "title", "when", "location", "amount"} <= set(body["variables"])
    assert body["variables"] == sorted(body["variables"])
