"""``/electrolytes/{id}/rdf`` serves the histogram grid (r_max, number and width of bins, edges) of its g(r).

Issue 22, row 20: the route served bin centres rounded to 1e-4 Å and no ``r_max`` or edges, so a peer could
not rebuild the same histogram. The grid here comes from a structure document written by the real builder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from electrodb.builders import run_builders
from electrodb.builders.analysis_settings import AnalysisSettings
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores
from tests.analysis.structure_cases import ideal_gas, write_case

BOX_A = 13.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One synthetic NaCl trajectory analysed by the builders; the API over that database."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    settings = ElectroDBSettings(data_dir=Path(tmp_path_factory.mktemp("electrodb-rdf-grid")))
    case = ideal_gas(n_formula=4, n_waters=48, box_A=BOX_A, n_frames=40, step_A=1.0, seed=5)
    with get_stores(settings) as stores:
        write_case(stores, case)
        run_builders(stores, settings=AnalysisSettings(n_blocks=4, rdf_bin_A=0.03))
        (structure,) = list(stores.structure.query({}))
    with TestClient(create_app(settings)) as client:
        (eid,) = [d["electrolyte_id"] for d in client.get("/electrolytes?_fields=salt").json()["data"]]
        yield {"client": client, "eid": eid, "structure": structure}


def test_rdf_serves_the_builders_exact_grid(built: dict[str, Any]) -> None:
    data = built["client"].get(f"/electrolytes/{built['eid']}/rdf", params={"max_points": 5000}).json()["data"]
    (traj,) = data["trajectories"]
    grid = traj["grid"]
    analysis = built["structure"]["provenance"]["analysis"]
    assert grid["source"] == "provenance" and grid["stride"] == 1
    assert grid["r_min_A"] == 0.0 and grid["r_max_A"] == analysis["r_max_A"]
    assert grid["r_max_A"] == pytest.approx(0.999 * BOX_A / 2, rel=1e-12)
    assert grid["n_bins"] == analysis["n_bins"] == round(grid["r_max_A"] / 0.03)
    assert grid["bin_width_A"] == pytest.approx(grid["r_max_A"] / grid["n_bins"], rel=1e-15)
    edges = np.asarray(grid["edges_A"])
    assert edges.size == grid["n_bins"] + 1 and edges[0] == 0.0 and edges[-1] == grid["r_max_A"]
    np.testing.assert_array_equal(edges, np.linspace(0.0, grid["r_max_A"], grid["n_bins"] + 1))
    for curve in traj["rdf"].values():
        # the served r are exactly the centres of these bins, as the builder rounded them
        np.testing.assert_array_equal(np.asarray(curve["r"]), (0.5 * (edges[1:] + edges[:-1])).round(4))


def test_the_rounded_centres_alone_do_not_give_the_grid(built: dict[str, Any]) -> None:
    grid = built["client"].get(f"/electrolytes/{built['eid']}/rdf").json()["data"]["trajectories"][0]["grid"]
    r = np.asarray(next(iter(built["structure"]["rdf"].values()))["r"])
    width = (r[-1] - r[0]) / (r.size - 1)
    assert abs((r[-1] + width / 2) - grid["r_max_A"]) > 1e-9  # what a peer had to guess before


def test_decimated_curves_say_which_bins_they_keep(built: dict[str, Any]) -> None:
    client, eid = built["client"], built["eid"]
    (traj,) = client.get(f"/electrolytes/{eid}/rdf", params={"max_points": 50, "pairs": "cation-O_w"}).json()["data"][
        "trajectories"
    ]
    grid = traj["grid"]
    assert grid["stride"] == int(np.ceil(grid["n_bins"] / 50)) > 1
    assert len(grid["edges_A"]) == grid["n_bins"] + 1  # the grid is never decimated
    edges = np.asarray(grid["edges_A"])
    centres = (0.5 * (edges[1:] + edges[:-1])).round(4)[:: grid["stride"]]
    np.testing.assert_array_equal(np.asarray(traj["rdf"]["cation-O_w"]["r"]), centres)


def test_documents_without_the_parameters_get_an_estimated_grid(http: Any) -> None:
    """The API tests' sample documents (r = 0.05 … 10 Å in 200 points) carry no r_max_A / n_bins."""
    eid = http.get("/electrolytes", params={"salt": "NaCl", "_limit": 1}).json()["data"][0]["electrolyte_id"]
    for traj in http.get(f"/electrolytes/{eid}/rdf").json()["data"]["trajectories"]:
        grid = traj["grid"]
        assert grid["source"] == "bin centres" and grid["n_bins"] == 200 and grid["stride"] == 1
        assert grid["r_min_A"] == pytest.approx(0.025) and grid["r_max_A"] == pytest.approx(10.025)
        assert len(grid["edges_A"]) == 201


def test_grid_of_a_document_without_rdf_is_none() -> None:
    from electrodb.api.resources.properties import rdf_grid

    assert rdf_grid({"rdf": {}}, 100) is None
    assert rdf_grid({"rdf": {"a-b": {"r": [0.5, 1.5], "g": [0, 1]}}}, 100)["edges_A"] == [0.0, 1.0, 2.0]
