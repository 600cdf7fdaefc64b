"""``GET /reference/conductivity``: the experimental conductivity the explorer draws beside σ, and σ's filters."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def client(db: dict[str, Any]) -> Any:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"])) as c:
        yield c


def test_reference_conductivity_at_25_c(client: Any) -> None:
    ref = client.get("/reference/conductivity?salt=KCl").json()["data"]
    assert ref["unit"] == "S/m" and ref["temperature"] == pytest.approx(298.15)
    assert ref["value"][ref["molality"].index(1.0)] == pytest.approx(10.862)  # the NIST standard
    assert ref["molality"] == sorted(ref["molality"]) and len(ref["source"]) == len(ref["value"])
    assert client.get("/reference/conductivity?salt=CsCl").status_code == 404  # only the CRC 20 °C table
    assert client.get("/reference/conductivity").status_code == 422


def test_sigma_and_t_plus_are_served_with_their_filters(client: Any) -> None:
    props = client.get("/properties").json()["data"]
    assert props["sigma"]["unit"] == "S/m" and props["sigma"]["label"] and props["sigma"]["experiment"]
    assert props["t_plus"]["label"] and props["sigma"]["plot"] == "mscd"
    assert client.get("/electrolytes?sigma_min=0&sigma_status=converged").status_code == 200
    assert client.get("/electrolytes?t_plus_max=1&_fields=sigma,sigma_err,t_plus").status_code == 200


def test_client_searches_sigma_and_t_plus() -> None:
    from electrodb.api.client_query import search_params

    params = search_params({"sigma": (1.0, 20.0), "t_plus_status": "converged", "ionicity_max": 1.0}, None, None)
    assert params["sigma_min"] <= 1.0 <= 20.0 <= params["sigma_max"]
    assert params["t_plus_status"] == "converged" and params["ionicity_max"] == 1.0
