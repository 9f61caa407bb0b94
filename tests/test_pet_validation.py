"""The pet API refuses what its schema means to refuse, naming the field (found by an adversarial pass:
a name of spaces was stored as "", `ageMonths: false` as 0)."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.testing import Harness


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   ", "species": "dog", "ageMonths": 1}, "name"),
        ({"name": "\t\n", "species": "dog", "ageMonths": 1}, "name"),
        ({"name": "A", "species": "dog", "ageMonths": False}, "ageMonths"),
        ({"name": "A", "species": "dog", "ageMonths": True}, "ageMonths"),
        ({"name": "A", "species": "dog", "ageMonths": "24"}, "ageMonths"),
        ({"name": "A", "species": "dog", "ageMonths": 2.5}, "ageMonths"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field_and_store_nothing(
    workbench: Harness, body: dict[str, Any], field: str
) -> None:
    response = workbench.client.post("/pets", json=body)
    assert response.status_code == 400, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert workbench.state.group("pets") == {}
    assert workbench.emitted() == []


def test_names_are_stored_without_surrounding_spaces(workbench: Harness) -> None:
    response = workbench.client.post("/pets", json={"name": "  Jack ", "species": "dog", "ageMonths": 0})
    assert response.status_code == 201
    assert response.json()["name"] == "Jack" and response.json()["ageMonths"] == 0
    pet_id = response.json()["id"]
    update = workbench.client.put(f"/pets/{pet_id}", json={"ageMonths": False})
    assert update.status_code == 400 and update.json()["fields"][0]["field"] == "ageMonths"
    assert workbench.state.get("pets", pet_id)["ageMonths"] == 0


def test_options_lists_every_method_of_a_path(workbench: Harness) -> None:
    for path, allow in (("/pets", "GET, OPTIONS, POST"), ("/pets/7", "DELETE, GET, OPTIONS, PUT")):
        response = workbench.client.options(path)
        assert response.status_code == 204
        assert response.headers["allow"] == allow
