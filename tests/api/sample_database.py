"""The API tests' database: summaries, property documents and trajectories of a synthetic campaign.

Every document is constructed through the pydantic models of ``electrodb.documents`` so that a schema change
breaks the tests instead of the API. :func:`build_database` writes it; :func:`expected` filters its summaries the
way the API must.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from electrodb.documents.properties import (
    ElectrolyteSummary,
    KineticsDoc,
    PairingDoc,
    Provenance,
    StructureDoc,
    TransportDoc,
    electrolyte_id,
)
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.models.loaded import ModelIdentity
from electrodb.settings import ElectroDBSettings
from electrodb.store.frames import TrajectoryWriter
from electrodb.store.stores import get_stores
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


#: What an older ElectroDB stored: a value beside the status ``insufficient`` (LiCl 3 mol/kg, CN(cation–O)); the
#: API, export, client and explorer must never show it.
LEGACY_INSUFFICIENT = {"salt": "LiCl", "molality": 3.0, "prop": "cn_cation_O", "value": 3.648}
#: The one system whose η was computed from its run (Green–Kubo); every other η is Laliberté's correlation.
ETA_COMPUTED = ("NaCl", 1.0, 298.15, MODEL_B)


def _verdict(salt: str, m: float, prop: str, value: Any) -> dict[str, str]:
    """Convergence status of a synthetic property: a few deliberately unconverged/insufficient/input ones."""
    criterion = f"{prop}: relative standard error < 10 %"
    if value is None:
        return {"status": "insufficient", "reason": "no first minimum in g(r)", "criterion": criterion}
    if (salt, m, prop) == (LEGACY_INSUFFICIENT["salt"], LEGACY_INSUFFICIENT["molality"], LEGACY_INSUFFICIENT["prop"]):
        return {"status": "insufficient", "reason": "2 centres x 0.68 ps = 1.4 centre-ps < 20", "criterion": criterion}
    if salt == "MgCl2" and prop in ("D_cation", "D_cation_pbc"):
        return {"status": "unconverged", "reason": "MSD slope 0.62, not diffusive", "criterion": criterion}
    if salt == "LiCl" and prop == "tau_cation_water":
        return {"status": "unconverged", "reason": "run shorter than 5 tau", "criterion": criterion}
    return {"status": "converged", "reason": "", "criterion": criterion}


def _properties(salt: str, m: float, temperature: float, model: str) -> dict[str, Any]:
    """Headline values: smooth, distinct functions of composition (so filters and sorts are testable).

    Every property of SUMMARY_PROPERTIES gets a value (known ones a physical-looking one), ``P_err``,
    ``P_status``, ``P_reason``, ``P_criterion``; D and CN also ``P_n_eff`` and ``P_t_equil_ps``. MgCl2 runs at a
    fixed input density (``density`` None, ``density_status`` input); η is an input (Laliberté) except for
    :data:`ETA_COMPUTED`; LiCl 3 mol/kg carries the legacy insufficient value :data:`LEGACY_INSUFFICIENT`.
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
        "cn_cation_O": {"NaCl": 5.6, "LiCl": 4.1, "MgCl2": 6.0}[salt] - 0.1 * m
        if (salt, m) != (LEGACY_INSUFFICIENT["salt"], LEGACY_INSUFFICIENT["molality"])
        else LEGACY_INSUFFICIENT["value"],
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
        if value is not None and prop.startswith(("D_", "cn_")):
            out[f"{prop}_n_eff"], out[f"{prop}_t_equil_ps"] = 30.0 + 10.0 * m, 2.5
        if out.get(f"{prop}_status") == "unconverged":  # what a campaign with until would still need
            out[f"{prop}_needs_ps"] = 12.0
    if salt == "MgCl2":  # NVT at a fixed density: no computed density to compare with experiment
        out.update({"density_source": "input", "density_input": 1080.0 + 50 * m, "density_status": "input"})
        out["density_reason"] = "fixed input density (no NPT run): not computed, see density_input"
    else:
        out["density_source"] = "npt"
    if (salt, m, temperature, model) == ETA_COMPUTED:
        out["eta_source"] = "green_kubo_run"
    else:
        out["eta_source"] = "laliberte_correlation"
        out.update({"eta_status": "input", "eta_reason": "taken from Laliberté's correlation for the salt"})
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
                peaks = {pair: rdf[pair]["r"][int(np.argmax(rdf[pair]["g"]))] for pair in rdf}
                shells = {
                    pair: {
                        "r_peak": peaks[pair],
                        "cn": 5.0,
                        "cn_err": 0.1,
                        "status": "converged",
                        "criterion": "cn_err < 0.2",
                        "reason": "",
                        # the peak position's own entry (analysis.shell_peak), read by the r_* properties
                        "peak": {
                            "r_peak": peaks[pair],
                            "r_peak_err": 0.005,
                            "status": "converged",
                            "criterion": "r_peak_err <= 0.02",
                            "reason": "",
                        },
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
