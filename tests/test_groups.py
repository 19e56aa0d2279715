"""Groups: unlimited, editable, many members at once; deleting a group keeps its contacts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

Headers = dict[str, str]


def contact(client: TestClient, headers: Headers, n: int) -> int:
    response = client.post(
        "/api/v1/contacts", json={"name": f"C{n}", "phone": f"0888 200 {n:03d}"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def group(client: TestClient, headers: Headers, name: str) -> dict[str, Any]:
    response = client.post("/api/v1/groups", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_group_lifecycle(client: TestClient, writer: Headers) -> None:
    ids = [contact(client, writer, n) for n in range(5)]
    clinic = group(client, writer, "Clinic patients")
    assert clinic["member_count"] == 0

    added = client.post(
        f"/api/v1/groups/{clinic['id']}/members", json={"contact_ids": ids[:4]}, headers=writer
    ).json()
    assert added == {"added": 4, "already_members": 0, "member_count": 4}
    again = client.post(
        f"/api/v1/groups/{clinic['id']}/members", json={"contact_ids": ids}, headers=writer
    ).json()
    assert again == {"added": 1, "already_members": 4, "member_count": 5}

    members = client.get(f"/api/v1/groups/{clinic['id']}/members", headers=writer).json()
    assert [m["id"] for m in members["items"]] == ids

    removed = client.delete(f"/api/v1/groups/{clinic['id']}/members/{ids[0]}", headers=writer)
    assert removed.status_code == 204
    not_member = client.delete(f"/api/v1/groups/{clinic['id']}/members/{ids[0]}", headers=writer)
    assert not_member.status_code == 404

    renamed = client.patch(
        f"/api/v1/groups/{clinic['id']}",
        json={"name": "Patients", "description": "Everyone we remind"},
        headers=writer,
    ).json()
    assert renamed["name"] == "Patients" and renamed["member_count"] == 4

    assert client.delete(f"/api/v1/groups/{clinic['id']}", headers=writer).status_code == 204
    assert client.get(f"/api/v1/groups/{clinic['id']}", headers=writer).status_code == 404
    for contact_id in ids:
        assert client.get(f"/api/v1/contacts/{contact_id}", headers=writer).status_code == 200


def test_contact_in_many_groups(client: TestClient, writer: Headers) -> None:
    shared = contact(client, writer, 1)
    names = [f"Group {i}" for i in range(30)]
    for name in names:
        g = group(client, writer, name)
        client.post(
            f"/api/v1/groups/{g['id']}/members", json={"contact_ids": [shared]}, headers=writer
        )
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/groups", params=params, headers=writer).json()
        listed += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [g["name"] for g in listed] == names
    assert all(g["member_count"] == 1 for g in listed)

    first = listed[0]["id"]
    client.delete(f"/api/v1/contacts/{shared}", headers=writer)
    assert client.get(f"/api/v1/groups/{first}", headers=writer).json()["member_count"] == 0


def test_unknown_ids_and_duplicate_names(client: TestClient, writer: Headers) -> None:
    g = group(client, writer, "Bills")
    unknown = client.post(
        f"/api/v1/groups/{g['id']}/members", json={"contact_ids": [987654]}, headers=writer
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "contact_ids"
    assert "987654" in unknown.json()["detail"]

    empty = client.post(
        f"/api/v1/groups/{g['id']}/members", json={"contact_ids": []}, headers=writer
    )
    assert empty.status_code == 422

    assert client.get("/api/v1/groups/987654/members", headers=writer).status_code == 404
    duplicate = client.post("/api/v1/groups", json={"name": "Bills"}, headers=writer)
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "name"
    other = group(client, writer, "Other")
    clash = client.patch(f"/api/v1/groups/{other['id']}", json={"name": "Bills"}, headers=writer)
    assert clash.status_code == 409
