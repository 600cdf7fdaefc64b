"""The conductivity entry of transport documents, its summary fields and the experimental conductivity beside it."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest

from electrodb.builders import run_builders
from electrodb.builders.conductivity import ion_count_problem
from electrodb.builders.reference import experimental_conductivity, experimental_values, reference_conductivity
from electrodb.documents.registry import PROPERTIES
from electrodb.systems.boxes import solution_density
from electrodb.systems.chemistry import parse_salt
from tests.synthetic import write_brownian_trajectory


def _rows() -> list[dict[str, str]]:
    with resources.files("electrodb.data").joinpath("conductivity_aqueous.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_correlation_rows_are_mccleskey_at_25_c():
    """Every 25 °C correlation row is McCleskey's equation with the coefficients chemicals ships (no typo)."""
    from thermo.electrochem import cond_data_McCleskey as table

    for row in (r for r in _rows() if r["status"] == "evaluated-correlation"):
        p = table[table.formula == row["salt"]].iloc[0]
        m, t = float(row["molality_mol_kg"]), 25.0
        molar = p.c1 * t * t + p.c2 * t + p.c3 - (p.d1 * t * t + p.d2 * t + p.d3) * m**0.5 / (1 + p.B * m**0.5)
        salt = parse_salt(row["salt"])
        rho = solution_density(salt, m, 298.15)[0]
        c = m * rho / (1000.0 + m * salt.molar_mass)  # mol/L
        assert float(row["kappa_S_m"]) == pytest.approx(molar * c * p.multiplier * 0.1, rel=1e-4), row["salt"]
        assert m <= 1.0  # McCleskey's range


def test_experimental_conductivity_at_25_c():
    # NIST primary standards are used as measured (CRC Handbook: 1408.23, 12824.6, 108620 × 1e-4 S/m)
    for m, kappa in ((0.01, 0.140823), (0.1, 1.28246), (1.0, 10.862)):
        exp = experimental_conductivity("KCl", m)
        assert exp.value == pytest.approx(kappa, rel=1e-6) and "NIST" in exp.source
    # the correlation agrees with them within 1.2 % where both exist
    for row in (r for r in _rows() if r["status"] == "experimental-standard"):
        corr = next(
            r
            for r in _rows()
            if r["salt"] == "KCl"
            and r["status"] == "evaluated-correlation"
            and r["molality_mol_kg"] == row["molality_mol_kg"]
        )
        assert float(corr["kappa_S_m"]) == pytest.approx(float(row["kappa_S_m"]), rel=0.012)
    nacl = experimental_conductivity("NaCl", 0.25)
    lo, hi = experimental_conductivity("NaCl", 0.2).value, experimental_conductivity("NaCl", 0.3).value
    assert lo < nacl.value < hi and "interpolated" in nacl.source and "McCleskey" in nacl.source
    assert experimental_conductivity("NaCl", 3.0) is None  # beyond the data: no extrapolation
    assert experimental_conductivity("CsCl", 0.1) is None  # only the CRC 20 °C table: not beside 25 °C runs
    assert reference_conductivity("CsCl", 20.0) and not reference_conductivity("CsCl")
    ms = [p.molality for p in reference_conductivity("LiCl")]
    assert ms == sorted(ms) and len(ms) == len(set(ms))


def test_summaries_get_experimental_conductivity_only_at_25_c():
    exp = experimental_values("NaCl", "Na+", "Cl-", 0.5, 298.15)
    assert exp["exp_sigma"] == pytest.approx(4.69, rel=0.02) and exp["exp_sigma_err"] is None
    assert "McCleskey" in exp["exp_sigma_source"]
    assert "exp_sigma" not in experimental_values("NaCl", "Na+", "Cl-", 0.5, 320.0)
    assert "exp_sigma" not in experimental_values("NaCl", "Na+", "Cl-", 4.0, 298.15)


def test_changing_ion_counts_are_refused():
    assert ion_count_problem({"n_cations": 3, "n_anions": 3}, 3, 3) == ""
    assert "changed" in ion_count_problem({"n_cations": 3, "n_anions": 3}, 2, 3)


def test_transport_documents_and_summaries_carry_conductivity(stores):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_waters=111, n_frames=400, seed=3)
    run_builders(stores)
    entry = stores.transport.query_one({"trajectory_id": doc.trajectory_id})["conductivity"]
    assert entry["method"] == "einstein_helfand" and "velocities" in entry["green_kubo"]
    # 2 ion pairs in a 40 ps run: computed, never converged, and the reason says why
    assert entry["sigma_S_m"] > 0 and entry["status"] == "unconverged" and "fewer than 10" in entry["reason"]
    assert entry["transference"]["status"] == "unconverged" and entry["nernst_einstein"]["n_eff"] > 0
    assert set(entry["onsager"]) == {"cation-cation", "anion-anion", "cation-anion"}
    assert len(entry["msd"]["t_ps"]) == len(entry["msd"]["mscd_A2"]) == len(entry["msd"]["self_A2"])
    summary = stores.electrolytes.query_one({})
    for name in ("sigma", "sigma_ne", "ionicity", "t_plus", "t_plus_ne"):
        assert name in PROPERTIES and summary[f"{name}_status"] == "unconverged"
        assert summary[name] is not None and summary[f"{name}_n_eff"] is not None
    assert summary["exp_sigma"] == pytest.approx(experimental_conductivity("NaCl", summary["molality"]).value)
    assert np.isfinite(summary["sigma_err"])


def test_export_columns_carry_units():
    from electrodb.io.export import property_column

    assert property_column("sigma") == "sigma_S_m" and property_column("sigma", "err") == "sigma_err_S_m"
    assert property_column("sigma", "exp") == "exp_sigma_S_m" and property_column("sigma_ne") == "sigma_ne_S_m"
    assert property_column("t_plus") == "t_plus" and property_column("t_plus", "status") == "t_plus_status"
