"""Tests of the read-only HTTP API (electrodb.api) over a database built here from the document schemas.

The synthetic database (:func:`build_database`) is also used by ``test_client_export.py`` and
``test_web_ui.py``; every property document is constructed through the pydantic models of
``electrodb.documents.properties`` so that a schema change breaks these tests instead of the API.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from electrodb import __version__
from electrodb.documents.properties import (
    SUMMARY_PROPERTIES,
    ElectrolyteSummary,
    KineticsDoc,
    PairingDoc,
    Provenance,
    StructureDoc,
    TransportDoc,
    electrolyte_id,
)
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.models.loader import ModelIdentity
from electrodb.settings import ElectroDBSettings
from electrodb.store.frames import TrajectoryWriter
from electrodb.store.stores import ReadOnlyStoreError, get_stores
from electrodb.systems.chemistry import parse_salt

MODEL_A = "name:mace-mp-0:small@mace-torch==0.3.10"
MODEL_B = "sha256:" + "ab" * 32
CAMPAIGN = "demo-campaign"
# (salt, molality, temperature, model, runs)
SYSTEMS = [
    *[("NaCl", m, 298.15, MODEL_A, 2 if m == 1.0 else 1) for m in (0.5, 1.0, 2.0, 3.0, 4.0)],
    ("NaCl", 1.0, 320.0, MODEL_A, 1),
    ("NaCl", 2.0, 320.0, MODEL_A, 1),
    ("NaCl", 1.0, 298.15, MODEL_B, 1),
    ("LiCl", 1.0, 298.15, MODEL_A, 1),
    ("LiCl", 2.0, 298.15, MODEL_A, 1),
    ("LiCl", 3.0, 298.15, MODEL_A, 1),
    ("MgCl2", 0.5, 298.15, MODEL_A, 1),
    ("MgCl2", 1.0, 298.15, MODEL_A, 1),
]
N_FRAMES = 10
R_GRID = np.linspace(0.05, 10.0, 200)


# ------------------------------------------------------------------------------------------ synthetic data


def _rdf(peak: float, height: float, density: float, shift: float = 0.0) -> dict[str, list[float]]:
    """A smooth model g(r): excluded core, a first peak at ``peak`` Å, damped oscillation → 1."""
    r = R_GRID
    core = 1.0 / (1.0 + np.exp(-(r - 0.85 * peak) / 0.05))
    g = (
        core
        * (1.0 + (height - 1.0) * np.exp(-(((r - peak) / 0.25) ** 2)) - 0.3 * np.exp(-(((r - 1.6 * peak) / 0.4) ** 2)))
        + shift
    )
    dr = r[1] - r[0]
    n = np.cumsum(4.0 * np.pi * r**2 * g * density * dr)
    return {"r": r.tolist(), "g": g.tolist(), "g_err": (0.02 * np.ones_like(r)).tolist(), "n": n.tolist()}


def _msd(d: float, n: int = 50) -> dict[str, list[float]]:
    t = np.linspace(0.0, 49.0, n)
    return {"t_ps": t.tolist(), "msd_A2": (6.0 * d * 0.1 * t).tolist()}  # D in 1e-9 m²/s = 0.1 Å²/ps


MODEL_NAMES = {MODEL_A: "mace-mp-0 small", MODEL_B: "fine-tuned NaCl"}
SECRET_DIR = "/srv/electrodb-secret/models"  # absolute server paths planted in the data: never served


def _verdict(salt: str, m: float, prop: str, value: Any) -> dict[str, str]:
    """Convergence status of a synthetic property: a few deliberately unconverged/insufficient ones."""
    criterion = f"{prop}: relative standard error < 10 %"
    if value is None:
        return {"status": "insufficient", "reason": "no first minimum in g(r)", "criterion": criterion}
    if salt == "MgCl2" and prop in ("D_cation", "D_cation_pbc"):
        return {"status": "unconverged", "reason": "MSD slope 0.62, not diffusive", "criterion": criterion}
    if salt == "LiCl" and prop == "tau_cation_water":
        return {"status": "unconverged", "reason": "run shorter than 5 tau", "criterion": criterion}
    return {"status": "converged", "reason": "", "criterion": criterion}


def _properties(salt: str, m: float, temperature: float, model: str) -> dict[str, Any]:
    """Headline values: smooth, distinct functions of composition (so filters and sorts are testable).

    Every property of SUMMARY_PROPERTIES gets a value (known ones a physical-looking one), ``P_err``,
    ``P_status``, ``P_reason``, ``P_criterion``; MgCl2 runs at a fixed input density (``density`` None).
    """
    dt = temperature - 298.15
    bump = 0.05 if model == MODEL_B else 0.0
    base = {"NaCl": (1.33, 2.03, 2.36, 11.0), "LiCl": (1.03, 2.03, 2.30, 12.0), "MgCl2": (0.70, 2.03, 2.20, 9.0)}
    dc, da, dw, tau = base[salt]
    props: dict[str, Any] = {
        "D_cation": dc - 0.08 * m + 0.02 * dt + bump,
        "D_anion": da - 0.1 * m + 0.03 * dt,
        "D_water": dw - 0.12 * m + 0.04 * dt,
        "r_cation_O": {"NaCl": 2.38, "LiCl": 1.95, "MgCl2": 2.09}[salt],
        "r_anion_O": 3.17,
        "cn_cation_O": {"NaCl": 5.6, "LiCl": 4.1, "MgCl2": 6.0}[salt] - 0.1 * m,
        "cn_anion_O": 6.9 - 0.2 * m,
        "cn_cation_anion": 0.1 * m,
        "cip_fraction_cation": 0.05 * m,
        "agg_fraction_cation": 0.01 * m,
        "free_fraction_cation": 1.0 - 0.06 * m,
        "tau_cation_water": tau + m,
        "tau_anion_water": None if salt == "MgCl2" else 5.0 + 0.5 * m,
        "density": None if salt == "MgCl2" else 997.0 + 40.0 * m,
        "eta": 0.89 + 0.1 * m,
        "T_mean": temperature + 0.3,
    }
    for sp in ("cation", "anion", "water"):
        props[f"D_{sp}_pbc"] = 0.9 * props[f"D_{sp}"]
    out: dict[str, Any] = {}
    for k, prop in enumerate(SUMMARY_PROPERTIES):  # properties added later still get a value
        value = props.get(prop, 1.0 + 0.01 * k + 0.1 * m)
        out[prop] = value
        out[f"{prop}_err"] = None if value is None else abs(value) * 0.03
        for key, text in _verdict(salt, m, prop, value).items():
            out[f"{prop}_{key}"] = text
    if salt == "MgCl2":  # NVT at a fixed density: no computed density to compare with experiment
        out.update({"density_source": "input", "density_input": 1080.0 + 50 * m, "density_status": "insufficient"})
        out["density_reason"] = "density fixed by input (NVT)"
    else:
        out["density_source"] = "npt"
    out["eta_source"] = "experiment (Kestin 1981)"
    out["model_name"] = MODEL_NAMES[model]
    if salt == "NaCl":
        out.update(
            {
                "exp_D_cation": 1.334,
                "exp_D_cation_source": "CRC (infinite dilution)",
                "exp_r_cation_O": 2.40,
                "exp_r_cation_O_source": "neutron diffraction",
                "exp_density": 1036.0,
                "exp_density_source": "CRC",
            }
        )
    if salt == "MgCl2":
        out.update({"exp_density": 1075.0, "exp_density_source": "CRC"})
    return out


def _trajectory_doc(
    tid: str, system_id: str, salt: str, m: float, temperature: float, model: str, status: str, n_frames: int
) -> TrajectoryDocument:
    s = parse_salt(salt)
    cations, anions = ["Na", "Li", "Mg"], ["Cl"]
    csym = next(c for c in cations if s.cation.name.startswith(c))
    symbols = [csym] * s.nu_cation + [anions[0]] * s.nu_anion + ["O", "H", "H"]
    n_ions = s.nu_cation + s.nu_anion
    return TrajectoryDocument(
        trajectory_id=tid,
        system_id=system_id,
        campaign_ids=[CAMPAIGN],
        status=status,
        salt=salt,
        cation=s.cation.name,
        anion=s.anion.name,
        molality=m,
        temperature=temperature,
        n_atoms=len(symbols),
        n_waters=1,
        n_cations=s.nu_cation,
        n_anions=s.nu_anion,
        symbols=symbols,
        masses=[22.99 if x == "Na" else 35.45 if x == "Cl" else 1.008 if x == "H" else 16.0 for x in symbols],
        role=[2] * s.nu_cation + [3] * s.nu_anion + [0, 1, 1],
        mol_id=[*range(n_ions), n_ions, n_ions, n_ions],
        ion_center=[True] * n_ions + [False] * 3,
        model_id=model,
        model={"model_id": model, "path": f"{SECRET_DIR}/{model[-6:]}.model"},
        md={"ensemble": "nvt"},
        timestep_fs=1.0,
        sample_interval_steps=100,
        frame_interval_ps=0.1,
        n_frames=n_frames,
        n_chunks=(n_frames + 3) // 4 if n_frames else 0,
        duration_ps=0.1 * n_frames,
        box_length_A=12.0,
    )


def _write_frames(blobs: Any, tid: str, n_atoms: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    positions = np.cumsum(rng.normal(0, 0.1, size=(N_FRAMES, n_atoms, 3)), axis=0).astype(np.float32) + 5.0
    writer = TrajectoryWriter(blobs, tid, n_atoms, chunk_frames=4)
    for i in range(N_FRAMES):
        writer.append(positions[i], np.eye(3) * 12.0, 0.1 * i, potential_energy=-10.0 - i, temperature=300.0 + i)
    writer.flush()
    return positions


def build_database(data_dir: Path) -> dict[str, Any]:
    """Fill an embedded database under ``data_dir`` with the synthetic systems of :data:`SYSTEMS`.

    Returns ``{"settings", "summaries" (JSON dicts as stored), "structure", "transport", "positions"}``.
    """
    settings = ElectroDBSettings(data_dir=data_dir)
    out: dict[str, Any] = {"settings": settings, "summaries": [], "structure": {}, "transport": {}, "positions": {}}
    docs: dict[str, list[dict]] = {
        name: [] for name in ("electrolytes", "structure", "transport", "pairing", "kinetics", "trajectories")
    }
    with get_stores(settings) as stores:
        for k, (salt, m, temperature, model, runs) in enumerate(SYSTEMS):
            s = parse_salt(salt)
            eid = electrolyte_id(salt, m, temperature, model)
            tids = [f"traj-{k:02d}-{r}" for r in range(runs)]
            props = _properties(salt, m, temperature, model)
            prov = Provenance(
                trajectory_ids=tids,
                model_id=model,
                model={"model_id": model, "path": f"{SECRET_DIR}/m.model", "source_file": "/data/runs/x.traj"},
                md={"ensemble": "nvt"},
                builder="test",
            )
            common = dict(
                electrolyte_id=eid,
                system_id=f"sys-{k:02d}",
                salt=salt,
                cation=s.cation.name,
                anion=s.anion.name,
                molality=m,
                temperature=temperature,
                model_id=model,
                campaign_ids=[CAMPAIGN] if model == MODEL_A else [],
                n_frames=N_FRAMES,
                duration_ps=1.0,
                provenance=prov,
            )
            for r, tid in enumerate(tids):
                status = "completed" if k < 3 else ["completed", "failed", "running"][k % 3]
                n_frames = N_FRAMES if k < 2 else 0
                traj = _trajectory_doc(tid, f"sys-{k:02d}", salt, m, temperature, model, status, n_frames)
                docs["trajectories"].append(traj.model_dump())
                if n_frames:
                    out["positions"][tid] = _write_frames(stores.data, tid, traj.n_atoms, seed=10 * k + r)
                rdf = {
                    pair: _rdf(peak, height, 0.033, shift=0.01 * r)
                    for pair, peak, height in (
                        ("cation-O_w", props["r_cation_O"], 6.0),
                        ("anion-O_w", 3.17, 3.0),
                        ("cation-anion", 2.8, 1.5),
                        ("O_w-O_w", 2.8, 3.1),
                    )
                }
                shells = {
                    pair: {
                        "r_peak": rdf[pair]["r"][int(np.argmax(rdf[pair]["g"]))],
                        "cn": 5.0,
                        "cn_err": 0.1,
                        "status": "converged",
                        "criterion": "cn_err < 0.2",
                        "reason": "",
                    }
                    for pair in rdf
                }
                structure = StructureDoc(trajectory_id=tid, **common, rdf=rdf, shells=shells, n_blocks=5)
                diffusion = {
                    sp: {
                        "D": props[f"D_{sp}"],
                        "D_err": props[f"D_{sp}_err"],
                        "D_pbc": props.get(f"D_{sp}_pbc", 0.9 * props[f"D_{sp}"]),
                        "fit_window_ps": 0.4,
                        **{k: props[f"D_{sp}_{k}"] for k in ("status", "criterion", "reason")},
                    }
                    for sp in ("cation", "anion", "water")
                }
                msd = {sp: _msd(props[f"D_{sp}"] * (1 + 0.01 * r)) for sp in ("cation", "anion", "water")}
                transport = TransportDoc(trajectory_id=tid, **common, diffusion=diffusion, msd=msd, box_length_A=12.0)
                pairing = PairingDoc(
                    trajectory_id=tid,
                    **common,
                    pairing={
                        "cation": {
                            "cip": props["cip_fraction_cation"],
                            "agg": props["agg_fraction_cation"],
                            **{k: props[f"cip_fraction_cation_{k}"] for k in ("status", "criterion", "reason")},
                        }
                    },
                )
                kinetics = KineticsDoc(
                    trajectory_id=tid,
                    **common,
                    residence={
                        "cation": {"tau_ps": 10.0, "status": "converged", "criterion": "run > 5 tau", "reason": ""}
                    },
                )
                for name, doc in (
                    ("structure", structure),
                    ("transport", transport),
                    ("pairing", pairing),
                    ("kinetics", kinetics),
                ):
                    docs[name].append(doc.model_dump())
                out["structure"][tid] = structure.model_dump()
                out["transport"][tid] = transport.model_dump()
            summary = ElectrolyteSummary(
                electrolyte_id=eid,
                salt=salt,
                cation=s.cation.name,
                anion=s.anion.name,
                nu_cation=s.nu_cation,
                nu_anion=s.nu_anion,
                cation_charge=s.cation.charge,
                anion_charge=s.anion.charge,
                cation_radius_A=s.cation.radius_A,
                anion_radius_A=s.anion.radius_A,
                molality=m,
                temperature=temperature,
                model_id=model,
                campaign_ids=common["campaign_ids"],
                trajectory_ids=tids,
                n_runs=runs,
                total_ps=0.4 * runs,  # short synthetic runs: the explorer must show 0.4 ps, not 0
                n_atoms=100,
                provenance=prov,
                **props,
            )
            docs["electrolytes"].append(summary.model_dump())
        for name, items in docs.items():
            stores[name].update(items)
        stores.models.update(
            [
                ModelIdentity(
                    model_id=mid, kind="mace_foundation", name=name, path=f"{SECRET_DIR}/{name}.model"
                ).model_dump()
                for mid, name in ((MODEL_A, "mace-mp-0:small"), (MODEL_B, "fine-tuned"))
            ]
        )
        stores.campaigns.update([{"campaign_id": CAMPAIGN, "name": "demo", "salts": ["NaCl", "LiCl", "MgCl2"]}])
        molalities = [0.5, 1.0, 2.0, 3.0, 4.0]
        # NaCl: the ThermoBuilder's shape (electrodb/builders/thermo.py), arrays under "series" and the
        # experiment table stored alongside; MgCl2: flat arrays at top level (also understood by the explorer).
        nacl_exp = {
            "molality": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "value": [0.681, 0.657, 0.668, 0.714, 0.783, 0.874, 0.986],
            "source": ["Hamer & Wu (1972)"],
        }
        stores.thermo.update(
            [
                {
                    "thermo_id": "thermo-nacl-a",
                    "salt": "NaCl",
                    "cation": "Na+",
                    "anion": "Cl-",
                    "temperature": 298.15,
                    "model_id": MODEL_A,
                    "electrolyte_ids": [],
                    "systems": [
                        {
                            "electrolyte_id": electrolyte_id("NaCl", m, 298.15, MODEL_A),
                            "a_cc": 1.0 - 0.05 * m,
                            "a_cc_err": 0.02,
                            "a_cc_status": "converged" if m < 3 else "unconverged",
                            "a_cc_reason": "" if m < 3 else "box edge 18 Å < 20 Å",
                        }
                        for m in (0.5, 1.0, 2.0, 3.0, 4.0)
                    ],
                    "status": "converged",
                    "criterion": "a_cc converged at every molality",
                    "reason": "",
                    "series": {
                        "molality": molalities,
                        "gamma": [0.70, 0.67, 0.68, 0.72, 0.79],
                        "gamma_err": [0.02] * 5,
                        "phi": [0.92, 0.93, 0.98, 1.04, 1.11],
                    },
                    "experiment": {"tables": {"gamma": nacl_exp}},
                },
                {
                    "thermo_id": "thermo-mgcl2-a",
                    "salt": "MgCl2",
                    "temperature": 298.15,
                    "model_id": MODEL_A,
                    "molality": [0.5, 1.0],
                    "gamma_pm": [0.49, 0.55],
                    "gamma_pm_err": [0.03, 0.03],
                    "status": "ok",  # legacy vocabulary
                },
            ]
        )
        stores.solvation.update(
            [
                {
                    "solvation_id": "solv-nacl-a",
                    "salt": "NaCl",
                    "temperature": 298.15,
                    "model_id": MODEL_A,
                    "dG_kJ_mol": -720.0,
                    "dG_err_kJ_mol": 4.0,
                }
            ]
        )
        out["summaries"] = [dict(d) for d in docs["electrolytes"]]
    return out


def expected(summaries: list[dict], **filters: Any) -> list[dict]:
    """Reference implementation of the summary filters in plain Python (lists: comma-separated strings)."""
    out = []
    for d in summaries:
        ok = True
        for key, value in filters.items():
            base, _, bound = key.rpartition("_")
            if bound in ("min", "max"):
                v = d.get(base)
                ok &= v is not None and (v >= value if bound == "min" else v <= value)
            elif key == "campaign":
                ok &= value in d["campaign_ids"]
            else:
                ok &= d.get(key) in str(value).split(",")
        if ok:
            out.append(d)
    return out


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_database(tmp_path_factory.mktemp("electrodb-api"))


@pytest.fixture(scope="module")
def app(db: dict[str, Any]) -> Any:
    from electrodb.api.app import create_app

    return create_app(db["settings"])


@pytest.fixture(scope="module")
def client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _ids(docs: list[dict]) -> list[str]:
    return [d["electrolyte_id"] for d in docs]


# ------------------------------------------------------------------------------------------ list + filters


def test_list_all_meta_and_no_mongo_id(client: Any, db: dict) -> None:
    body = client.get("/electrolytes").json()
    n = len(SYSTEMS)
    assert body["meta"] == {
        "total_doc": n,
        "total": n,  # deprecated alias
        "limit": 100,
        "skip": 0,
        "max_limit": 1000,
        "api_version": __version__,
        "warnings": [],
    }
    assert len(body["data"]) == len(SYSTEMS)
    assert all("_id" not in d for d in body["data"])
    assert _ids(body["data"]) == sorted(_ids(db["summaries"]))  # default order: key
    one = body["data"][0]
    assert isinstance(one["last_updated"], str) and one["provenance"]["builder"] == "test"


@pytest.mark.parametrize(
    "filters",
    [
        {"salt": "NaCl"},
        {"salt": "LiCl", "molality_min": 1.5},
        {"salt": "NaCl", "temperature_min": 300.0},
        {"molality_min": 1.0, "molality_max": 3.0, "temperature_max": 300.0},
        {"model_id": MODEL_B},
        {"campaign": CAMPAIGN},
        {"D_cation_min": 1.0, "D_cation_max": 1.3},
        {"cn_cation_O_max": 5.0},
        {"tau_anion_water_min": 0.0},
        {"cation": "Li+"},
        {"anion": "Cl-", "density_min": 1070.0},
        {"salt": "MgCl2", "cip_fraction_cation_min": 0.03},
        {"salt": "NaCl,LiCl"},
        {"D_cation_status": "converged"},
        {"D_cation_status": "unconverged,insufficient"},
        {"tau_cation_water_status": "unconverged", "salt": "LiCl"},
        {"tau_anion_water_status": "insufficient"},
        {"model_id": f"{MODEL_A},{MODEL_B}"},
    ],
)
def test_filters_match_reference(client: Any, db: dict, filters: dict) -> None:
    body = client.get("/electrolytes", params=filters).json()
    want = expected(db["summaries"], **filters)
    assert body["meta"]["total_doc"] == len(want) > 0
    assert sorted(_ids(body["data"])) == sorted(_ids(want))


@pytest.mark.parametrize("spelling", ["nacl", "Na+/Cl-", "NaCl"])
def test_salt_spellings_are_canonicalised(client: Any, spelling: str) -> None:
    assert client.get("/electrolytes", params={"salt": spelling}).json()["meta"]["total_doc"] == 8


def test_ion_given_as_formula_or_with_url_plus(client: Any) -> None:
    assert client.get("/electrolytes?cation=Li").json()["meta"]["total_doc"] == 3
    assert client.get("/electrolytes?cation=Li+").json()["meta"]["total_doc"] == 3  # '+' decodes to a space
    assert client.get("/electrolytes?cation=Li%2B").json()["meta"]["total_doc"] == 3


def test_unknown_salt_matches_nothing(client: Any) -> None:
    body = client.get("/electrolytes?salt=KBr").json()
    assert body["data"] == [] and body["meta"]["total_doc"] == 0 and body["meta"]["warnings"] == []


# ------------------------------------------------------------------------------------------ pages, sort, fields


def test_pagination_totals_respect_filters(client: Any, db: dict) -> None:
    want = sorted(_ids(expected(db["summaries"], salt="NaCl")))
    got = []
    for skip in range(0, 10, 3):
        body = client.get("/electrolytes", params={"salt": "NaCl", "_limit": 3, "_skip": skip}).json()
        assert (body["meta"]["total_doc"], body["meta"]["limit"], body["meta"]["skip"]) == (len(want), 3, skip)
        got += _ids(body["data"])
    assert got == want
    only_total = client.get("/electrolytes?salt=LiCl&_limit=0").json()
    assert only_total["data"] == [] and only_total["meta"]["total_doc"] == 3


def test_sort_descending_and_multi_key(client: Any, db: dict) -> None:
    data = client.get("/electrolytes?_sort_fields=-D_cation").json()["data"]
    values = [d["D_cation"] for d in data]
    assert values == sorted(values, reverse=True)
    data = client.get("/electrolytes?salt=NaCl&_sort_fields=molality,-temperature").json()["data"]
    keys = [(d["molality"], -d["temperature"]) for d in data]
    assert keys == sorted(keys)


def test_projection(client: Any) -> None:
    data = client.get("/electrolytes?_fields=salt,molality,D_cation_err&_limit=2").json()["data"]
    assert all(set(d) == {"electrolyte_id", "salt", "molality", "D_cation_err"} for d in data)
    doc = client.get("/electrolytes?_fields=provenance.model_id&_limit=1").json()["data"][0]
    assert set(doc["provenance"]) == {"model_id"}


def test_sorted_page_follows_mongo_order() -> None:
    from electrodb.store.query import sorted_page

    values = [(None, 1), (2.0, "a"), (1, "b"), ("s", 1), (2.0, "b"), ([3, 0.5], 1)]
    docs = [{"k": i, "v": v, "w": w} for i, (v, w) in enumerate(values)]
    sort = {"v": 1, "w": -1, "k": 1}
    page, total = sorted_page(iter(docs), sort, 0, 10)
    assert [d["k"] for d in page] == [0, 5, 2, 4, 1, 3] and total == 6  # null < numbers < strings
    page, total = sorted_page(iter(docs), sort, 2, 2)
    assert [d["k"] for d in page] == [2, 4] and total == 6
    assert sorted_page(iter(docs), sort, 0, 0) == ([], 6)
    page, _ = sorted_page(iter(docs), {"v": -1, "k": 1}, 0, 10)
    assert [d["k"] for d in page] == [3, 5, 1, 4, 2, 0]  # descending: arrays by their largest element


def test_limit_bounds(client: Any) -> None:
    assert client.get("/electrolytes?_limit=1000").status_code == 200
    assert client.get("/electrolytes?_limit=1001").status_code == 422
    assert client.get("/electrolytes?_skip=-1").status_code == 422


# ------------------------------------------------------------------------------------------ single docs, arrays


def test_get_one_and_404(client: Any, db: dict) -> None:
    eid = db["summaries"][0]["electrolyte_id"]
    doc = client.get(f"/electrolytes/{eid}").json()["data"]
    assert doc["electrolyte_id"] == eid and "_id" not in doc and doc["D_cation"] == db["summaries"][0]["D_cation"]
    assert set(client.get(f"/electrolytes/{eid}?_fields=salt").json()["data"]) == {"electrolyte_id", "salt"}
    for path in (
        "/electrolytes/0000000000000000",
        "/electrolytes/0000000000000000/rdf",
        "/electrolytes/0000000000000000/msd",
        "/trajectories/nope",
    ):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["error"]["status"] == 404 and "no " in r.json()["error"]["message"]


def test_rdf_route(client: Any, db: dict) -> None:
    summary = next(d for d in db["summaries"] if d["n_runs"] == 2)
    data = client.get(f"/electrolytes/{summary['electrolyte_id']}/rdf").json()["data"]
    assert [t["trajectory_id"] for t in data["trajectories"]] == summary["trajectory_ids"]
    first = data["trajectories"][0]
    stored = db["structure"][summary["trajectory_ids"][0]]["rdf"]["cation-O_w"]
    assert first["rdf"]["cation-O_w"]["g"] == pytest.approx(stored["g"])
    assert first["rdf"]["cation-O_w"]["n"] == pytest.approx(stored["n"])
    assert "cation-O_w" in first["shells"]
    only = client.get(f"/electrolytes/{summary['electrolyte_id']}/rdf?pairs=anion-O_w&max_points=50").json()
    rdf = only["data"]["trajectories"][0]["rdf"]
    assert set(rdf) == {"anion-O_w"} and len(rdf["anion-O_w"]["r"]) == 50 == len(rdf["anion-O_w"]["g"])


def test_msd_route(client: Any, db: dict) -> None:
    summary = db["summaries"][3]
    data = client.get(f"/electrolytes/{summary['electrolyte_id']}/msd?species=cation,water").json()["data"]
    traj = data["trajectories"][0]
    assert set(traj["msd"]) == {"cation", "water"} and set(traj["diffusion"]) == {"cation", "water"}
    stored = db["transport"][summary["trajectory_ids"][0]]["msd"]["water"]
    assert traj["msd"]["water"]["msd_A2"] == pytest.approx(stored["msd_A2"])


# ------------------------------------------------------------------------------------------ collections


@pytest.mark.parametrize("coll", ["structure", "transport", "pairing", "kinetics"])
def test_property_collections(client: Any, db: dict, coll: str) -> None:
    n_traj = sum(runs for *_, runs in SYSTEMS)
    assert client.get(f"/{coll}?_limit=0").json()["meta"]["total_doc"] == n_traj
    eid = db["summaries"][1]["electrolyte_id"]
    body = client.get(f"/{coll}", params={"electrolyte_id": eid, "_fields": "salt,molality"}).json()
    assert body["meta"]["total_doc"] == 2 and all(set(d) == {"trajectory_id", "salt", "molality"} for d in body["data"])
    body = client.get(f"/{coll}", params={"salt": "LiCl", "molality_min": 2, "temperature_max": 300}).json()
    assert body["meta"]["total_doc"] == 2
    assert client.get(f"/{coll}", params={"trajectory_id": "traj-00-0"}).json()["meta"]["total_doc"] == 1


def test_trajectories_metadata_only(client: Any) -> None:
    body = client.get("/trajectories?salt=NaCl&_sort_fields=-molality").json()
    assert body["meta"]["total_doc"] == 9
    assert all("symbols" not in d and "masses" not in d for d in body["data"])
    assert client.get("/trajectories?status=failed").json()["meta"]["total_doc"] > 0
    assert client.get("/trajectories?status=bogus").status_code == 422
    doc = client.get("/trajectories/traj-00-0").json()["data"]
    assert doc["symbols"] == ["Na", "Cl", "O", "H", "H"] and doc["n_frames"] == N_FRAMES
    symbols = client.get("/trajectories?trajectory_id=traj-00-0&_fields=symbols").json()["data"][0]
    assert symbols == {"trajectory_id": "traj-00-0", "symbols": ["Na", "Cl", "O", "H", "H"]}


def test_generic_collections(client: Any) -> None:
    models = client.get("/models").json()
    assert models["meta"]["total_doc"] == 2 and {m["model_id"] for m in models["data"]} == {MODEL_A, MODEL_B}
    assert client.get("/models", params={"model_id": MODEL_B}).json()["data"][0]["name"] == "fine-tuned"
    assert client.get("/campaigns").json()["data"][0]["campaign_id"] == CAMPAIGN
    thermo = client.get("/thermo?salt=NaCl&temperature_min=298&temperature_max=299").json()
    assert thermo["meta"]["total_doc"] == 1 and thermo["data"][0]["series"]["gamma"][0] == 0.70
    assert client.get("/thermo?salt=LiCl").json()["meta"]["total_doc"] == 0
    solv = client.get("/solvation", params={"model_id": MODEL_A, "_fields": "dG_kJ_mol"}).json()["data"]
    assert solv == [{"solvation_id": "solv-nacl-a", "dG_kJ_mol": -720.0}]


def test_facets_health_reference_docs(client: Any) -> None:
    facets = client.get("/facets").json()["data"]
    assert facets["salt"] == ["LiCl", "MgCl2", "NaCl"] and set(facets["model_id"]) == {MODEL_A, MODEL_B}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "embedded" and health["read_only"] is True
    assert health["counts"]["electrolytes"] == len(SYSTEMS) and health["counts"]["thermo"] == 2
    ref = client.get("/reference/activity?salt=NaCl").json()["data"]
    assert ref["gamma_pm"]["value"][ref["gamma_pm"]["molality"].index(1.0)] == pytest.approx(0.657)
    assert client.get("/reference/activity").status_code == 422
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/electrolytes", "/electrolytes/{electrolyte_id}/rdf", "/export", "/thermo"} <= set(paths)
    names = {p["name"] for p in paths["/electrolytes"]["get"]["parameters"]}
    assert {f"{p}_{b}" for p in SUMMARY_PROPERTIES for b in ("min", "max")} <= names


def test_gzip_for_large_arrays(client: Any, db: dict) -> None:
    eid = db["summaries"][0]["electrolyte_id"]
    r = client.get(f"/electrolytes/{eid}/rdf", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"


# ------------------------------------------------------------------------------------------ safety


@pytest.mark.parametrize(
    "query",
    [
        'salt={"$gt":""}',
        "salt=$where",
        "salt=%24ne",
        "_sort=$natural",
        "_sort=-$natural",
        "_sort_fields=$natural",
        "_sort_fields=-D_cation,nope",
        "_fields=__proto__",
        "_fields=$where",
        "model_id=$regex",
        'model_id={"$ne":null}',
        "campaign=$in",
        "cation=$gt",
        'D_cation_min={"$gt":1}',
        "salt[$ne]=x",
        "salt=NaCl&salt=LiCl",
        "_sort=not_a_field",
        "_fields=salt,nope",
        "_sort=salt,molality,temperature,model_id",
        "nonsense=1",
        "salt=" + "N" * 80,
    ],
)
def test_injection_and_unknown_parameters_are_422(client: Any, query: str) -> None:
    r = client.get(f"/electrolytes?{query}")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["status"] == 422 and isinstance(err["message"], str) and "detail" in err


@pytest.mark.parametrize(
    "path",
    [
        "/structure?trajectory_id=$where",
        "/trajectories?salt={}",
        "/thermo?_fields=__proto__",
        "/thermo?_sort=$natural",
        "/models?kind=$gt",
        "/export?salt=$where",
        "/export?format=parquet",
        "/electrolytes/%24where",
        "/electrolytes/x/rdf?pairs=%7B%7D",
        "/electrolytes/x/rdf?max_points=1000000",
    ],
)
def test_injection_on_other_routes(client: Any, path: str) -> None:
    assert client.get(path).status_code == 422


@pytest.mark.parametrize(
    "query",
    [
        "_limit=abc",
        "_skip=1.5",
        "molality_min=one",
        "temperature_max=inf",
        "D_water_min=nan",
        "with_arrays=maybe",
        "D_cation_status=converged,maybe",
        "_page=0",
        "_per_page=1001",
    ],
)
def test_bad_types_are_422(client: Any, query: str) -> None:
    path = "/export" if "with_arrays" in query else "/electrolytes"
    r = client.get(f"{path}?{query}")
    assert r.status_code == 422 and r.json()["error"]["status"] == 422


def test_no_write_routes(app: Any, client: Any) -> None:
    from starlette.routing import Mount, Route

    paths = set()
    for route in app.routes:
        if isinstance(route, Mount):
            paths.add(route.path + "/index.html")
            continue
        assert isinstance(route, Route)
        assert set(route.methods or ()) <= {"GET", "HEAD"}, route.path
        paths.add(route.path.replace("{electrolyte_id}", "x").replace("{trajectory_id}", "x"))
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert r.json()["error"]["status"] == 405


def test_stores_are_read_only(app: Any) -> None:
    store = app.state.db.store("electrolytes")
    with pytest.raises(ReadOnlyStoreError):
        store.update([{"electrolyte_id": "x"}])
    with pytest.raises(ReadOnlyStoreError):
        store.remove_docs({})


def test_500_uses_error_shape(db: dict) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    app = create_app(db["settings"])

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"status": 500, "message": "internal server error", "detail": {"type": "RuntimeError"}}
    }


def test_nan_values_are_served_as_null(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    settings = ElectroDBSettings(data_dir=tmp_path)
    with get_stores(settings) as stores:
        stores.models.update([{"model_id": "m-nan", "rmse": math.nan, "errors": [1.0, math.inf]}])
    with TestClient(create_app(settings)) as c:
        assert c.get("/models").json()["data"] == [{"model_id": "m-nan", "rmse": None, "errors": [1.0, None]}]


# ------------------------------------------------------------------------------------------ schemathesis


def test_schemathesis_finds_no_server_errors(app: Any) -> None:
    """Property-based requests generated from the OpenAPI schema (≈ 20 s): no 5xx, every answer's status,
    content type and body as documented, and valid requests accepted (2xx or a documented 404)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        positive_data_acceptance,
    ]

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    n_operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        n_operations += 1

        @given(operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(checks=checks)

        check()
    assert n_operations >= 15


# ------------------------------------------------------------------------------------------ MongoDB code path


def test_mongodb_code_path_with_mongomock(db: dict, client: Any) -> None:
    """The non-embedded branch (count + find with sort/skip/limit, distinct) on a mongomock-backed store."""
    import contextlib

    from fastapi.testclient import TestClient
    from maggma.stores import MemoryStore

    from electrodb.api.app import create_app

    app = create_app(db["settings"])
    database = app.state.db
    memory = MemoryStore("electrolytes", key="electrolyte_id")
    memory.connect()
    memory.update(db["summaries"])
    database.stores._stores["electrolytes"] = memory  # swap in the mongomock collection
    database._connected.add("electrolytes")
    database.embedded = False
    database.lock = contextlib.nullcontext()
    queries = [
        "salt=NaCl&_sort=molality,-temperature,model_id&_limit=4&_skip=2",
        "D_cation_min=1.0&_sort_fields=-D_cation&_fields=salt,D_cation",
        "campaign=" + CAMPAIGN + "&_limit=0",
        "cation=Li&molality_max=2.5",
    ]
    with TestClient(app) as mongo:
        for query in queries:
            assert mongo.get(f"/electrolytes?{query}").json() == client.get(f"/electrolytes?{query}").json()
        assert mongo.get("/facets").json() == client.get("/facets").json()


# ------------------------------------------------------------------------------------------ statuses, conventions


def test_every_property_carries_its_status(client: Any) -> None:
    docs = client.get("/electrolytes").json()["data"]
    for doc in docs:
        for prop in SUMMARY_PROPERTIES:
            assert doc[f"{prop}_status"] in ("converged", "unconverged", "insufficient"), (prop, doc)
            assert isinstance(doc[f"{prop}_reason"], str) and isinstance(doc[f"{prop}_criterion"], str)
            if doc[f"{prop}_status"] == "converged":
                assert doc[f"{prop}_reason"] == ""
    mg = next(d for d in docs if d["salt"] == "MgCl2")
    assert mg["D_cation_status"] == "unconverged" and "not diffusive" in mg["D_cation_reason"]
    assert mg["density"] is None and mg["density_source"] == "input" and mg["density_input"] > 1000
    assert mg["model_name"] == "mace-mp-0 small"


def test_status_filters_and_lists(client: Any, db: dict) -> None:
    body = client.get("/electrolytes?D_cation_status=converged&_fields=salt,D_cation_status").json()
    assert {d["salt"] for d in body["data"]} == {"NaCl", "LiCl"}
    assert body["meta"]["total_doc"] == len(SYSTEMS) - 2
    both = client.get("/electrolytes?salt=MgCl2,LiCl&_limit=0").json()["meta"]["total_doc"]
    assert both == 5
    r = client.get("/electrolytes?D_cation_status=ok")
    assert r.status_code == 422 and "D_cation_status" in r.json()["error"]["message"]
    assert client.get("/thermo?status=converged").json()["meta"]["total_doc"] == 1
    assert client.get("/thermo?status=ok,derivative_only").json()["meta"]["total_doc"] == 1  # legacy document
    assert client.get("/thermo?status=nonsense").status_code == 422


def test_emmet_paging_sorting_and_deprecations(client: Any, db: dict) -> None:
    want = sorted(_ids(db["summaries"]))
    page2 = client.get("/electrolytes?_page=2&_per_page=4").json()
    assert _ids(page2["data"]) == want[4:8] and page2["meta"]["page"] == 2 and page2["meta"]["per_page"] == 4
    assert page2["meta"]["skip"] == 4 and page2["meta"]["limit"] == 4
    mixed = client.get("/electrolytes?_page=1&_per_page=2&_skip=5").json()
    assert _ids(mixed["data"]) == want[:2] and "_skip ignored" in mixed["meta"]["warnings"][0]
    new = client.get("/electrolytes?_sort_fields=-D_cation")
    old = client.get("/electrolytes?_sort=-D_cation")
    assert new.json()["data"] == old.json()["data"] and "deprecation" not in new.headers
    assert old.headers["deprecation"] == "true" and "_sort_fields" in old.headers["warning"]
    assert old.json()["meta"]["warnings"] == ["parameter _sort is deprecated; use _sort_fields"]
    everything = client.get("/electrolytes?_all_fields=true&_fields=salt&_limit=1").json()
    assert len(everything["data"][0]) > 20 and "_fields ignored" in everything["meta"]["warnings"][0]
    empty = client.get("/electrolytes?molality_min=3&molality_max=1").json()
    assert empty["data"] == [] and "empty range" in empty["meta"]["warnings"][0]


def test_no_absolute_server_path_is_served(client: Any, db: dict) -> None:
    eid = db["summaries"][1]["electrolyte_id"]
    paths = [
        "/electrolytes",
        f"/electrolytes/{eid}",
        f"/electrolytes/{eid}/rdf",
        f"/electrolytes/{eid}/msd",
        "/trajectories?_fields=model,symbols",
        "/trajectories/traj-01-0",
        "/models",
        "/structure",
        "/health",
        "/facets",
        "/export?format=jsonl",
        "/export?format=csv",
    ]
    data_dir = str(db["settings"].data_dir)
    for path in paths:
        text = client.get(path).text
        assert SECRET_DIR not in text and "/data/runs" not in text and data_dir not in text, path
    models = client.get("/models").json()["data"]
    assert {m["path"] for m in models} == {"mace-mp-0:small.model", "fine-tuned.model"}
    prov = client.get(f"/electrolytes/{eid}?_fields=provenance").json()["data"]["provenance"]["model"]
    assert prov["path"] == "m.model" and prov["source_file"] == "x.traj"


def test_strip_path_rules() -> None:
    from electrodb.api.app import jsonable

    doc = {
        "path": "/a/b/c.model",
        "model_path": "relative/dir/m.model",
        "log": "failed reading /srv/x/y.traj: truncated",
        "salt": "Li+/TFSI-",
        "unit": "1e-9 m^2/s",
        "url": "http://host/a/b",
        "win": "C:\\models\\m.model",
    }
    assert jsonable(doc) == {
        "path": "c.model",
        "model_path": "m.model",
        "log": "failed reading y.traj: truncated",
        "salt": "Li+/TFSI-",
        "unit": "1e-9 m^2/s",
        "url": "http://host/a/b",
        "win": "m.model",
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_first_on_a_fresh_server(db: dict, fmt: str) -> None:
    """Regression: /export before any /thermo or /solvation request returned an empty table or a 500."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"])) as fresh:
        r = fresh.get(f"/export?format={fmt}&salt=NaCl")
    assert r.status_code == 200, r.text
    lines = r.text.strip().splitlines()
    assert len(lines) == 8 + (fmt == "csv")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in lines]
        nacl = next(
            r for r in rows if (r["molality_mol_kg"], r["temperature_K"], r["model_id"]) == (1.0, 298.15, MODEL_A)
        )
        assert nacl["gamma_pm"] == 0.67 and nacl["thermo_status"] == "converged"


def test_openapi_describes_what_is_accepted(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    ref = {p["name"]: p for p in paths["/reference/activity"]["get"]["parameters"]}
    assert ref["salt"]["required"] is True
    params = {p["name"]: p for p in paths["/electrolytes"]["get"]["parameters"]}
    sort_schema = params["_sort_fields"]["schema"]["anyOf"][0]
    assert "D_cation_status" in sort_schema["pattern"] and params["_sort"]["deprecated"] is True
    assert "provenance" in params["_fields"]["schema"]["anyOf"][0]["pattern"]
    assert {f"{p}_status" for p in SUMMARY_PROPERTIES} <= set(params)
    assert {"_page", "_per_page", "_skip", "_limit", "_all_fields"} <= set(params)
    one = paths["/electrolytes/{electrolyte_id}"]["get"]["responses"]
    assert {"200", "404", "422"} <= set(one)
    assert one["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert set(paths["/export"]["get"]["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}


def test_cors_off_by_default_and_configurable(db: dict) -> None:
    from fastapi.testclient import TestClient
    from pydantic import Field

    from electrodb.api.app import create_app

    headers = {"Origin": "http://example.org"}
    with TestClient(create_app(db["settings"])) as plain:
        assert "access-control-allow-origin" not in plain.get("/health", headers=headers).headers

    class CorsSettings(ElectroDBSettings):
        cors_origins: list[str] = Field(default_factory=lambda: ["http://example.org"])

    with TestClient(create_app(CorsSettings(data_dir=db["settings"].data_dir))) as cors:
        r = cors.get("/health", headers=headers)
        assert r.headers["access-control-allow-origin"] == "http://example.org"


def test_dotted_projection_has_mongodb_semantics_on_every_backend(client: Any) -> None:
    """Regression (schemathesis): ``_fields=campaign_ids.0`` (a path into an array of strings) was a 500."""
    from electrodb.store.query import apply_subpaths

    doc = {"a": [1, {"b": 2, "c": 3}, {"c": 4}], "d": {"e": 1, "f": 2}, "g": 5, "k": "x"}
    assert apply_subpaths(doc, ["a.b", "d.e", "g.h", "k"]) == {"a": [{"b": 2}, {}], "d": {"e": 1}, "k": "x"}
    r = client.get("/trajectories?_fields=campaign_ids.0,symbols.x&_limit=2")
    assert r.status_code == 200 and r.json()["data"][0] == {
        "trajectory_id": "traj-00-0",
        "campaign_ids": [],
        "symbols": [],
    }
    doc = client.get("/electrolytes?_fields=provenance.model.path,molality&_limit=1").json()["data"][0]
    assert doc["provenance"] == {"model": {"path": "m.model"}} and set(doc) == {
        "electrolyte_id",
        "provenance",
        "molality",
    }
