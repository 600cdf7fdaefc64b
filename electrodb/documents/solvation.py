"""Solvation free-energy documents: the TI run and window records and the :class:`SolvationDocument` assembled from
them.

:func:`assemble_solvation_document` turns a TI run (kind ``ti_run`` in the ``data`` store, written by
:func:`electrodb.flows.solvation.ti_setup`) and its windows (kind ``ti_window``) into a
:class:`SolvationDocument`. The flow's combine job calls it once; :class:`electrodb.builders.solvation.SolvationBuilder`
calls it again for every run whose windows are newer than its ``solvation`` document, e.g. after re-running a
window or to re-analyse with other :class:`~electrodb.flows.solvation.TIAnalysisSettings`. Equations and
caveats: ``docs/solvation.md``.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from maggma.core import Store
from maggma.stores import GridFSStore
from pydantic import BaseModel, ConfigDict, Field

from electrodb import __version__
from electrodb.analysis.activity import water_dielectric_constant
from electrodb.analysis.free_energy import EV_TO_KJ_PER_MOL, TIResult
from electrodb.analysis.ti_paths import LEGS, leg_estimate, solvation_cycle, window_statistics
from electrodb.utils.provenance import utcnow

__all__ = [
    "CAVEATS",
    "CONVENTIONS",
    "ConvergenceRow",
    "LegResult",
    "SolvationDocument",
    "TIWindowSummary",
    "assemble_solvation_document",
    "experimental_salt_hydration",
    "put_ti_docs",
    "run_blob_uuid",
    "solvation_record",
    "window_blob_uuid",
]

METHOD = (
    "two-leg alchemical TI of one neutral formula unit: (1) soft-core cavity wall grown around the decoupled ions, "
    "U = E_solv + E_ions + μ^p W; (2) linear NNP coupling with the wall removed, "
    "U = λ E_full + (1 − λ)(E_solv + E_ions + W); Gauss–Legendre quadrature on each leg"
)

CONVENTIONS = (
    "ΔF values are Helmholtz free energies of transferring one formula unit from the NNP's isolated-ion gas phase "
    "into the NVT solution box at the same number density (Ben-Naim ΔG*, kJ/mol per formula unit). "
    "ΔG°_solv = ΔF_cavity + ΔF_coupling + ν RT ln(c° RT/p°) [+ gas-reference correction]; standard states: ideal "
    "gas at p° (default 1 atm) → ideal solution at c° = 1 mol/L. 'with_lr' adds the Born correction "
    "−Σ q² e²/(8π ε0 R_c)(1 − 1/ε_r) for the dielectric response beyond R_c that a local NNP lacks. Errors are "
    "1 standard error of the statistics only (autocorrelation-corrected per window, windows independent). "
    "Experimental values: sum over the ions of Marcus (2015) single-ion hydration free energies, one table only."
)

CAVEATS = [
    "Local NNPs (MACE, CHGNet, ...) have no explicit long-range electrostatics: beyond their receptive field the "
    "solvent does not respond to the ion's charge, so they underestimate the magnitude of ionic solvation free "
    "energies (shown for Mg2+ with MACE by Falkner, Montero de Hijes, Dellago & Schwierz, arXiv:2606.20105). The "
    "Born term is an estimate of the missing part, assuming the NNP's response vanishes beyond R_c; a model "
    "trained on bulk periodic data may have absorbed part of it into local energies, so the truth lies between "
    "the values with and without it.",
    "The gas-phase end state is the NNP's energy of each ion alone. An NNP has no charge input, so an isolated "
    "'Na' is whatever its training made of a lone atom (often the neutral-atom E0), not the Na+ ion; without "
    "gas_phase_ion_energies_eV the result may be offset by Σ[E_NNP(ion alone) − E_ref(charged ion)] (for NaCl "
    "with neutral-atom references of order IP(Na) − EA(Cl) ≈ 1.5 eV ≈ 150 kJ/mol).",
    "One formula unit in a small box is a finite concentration (see molarity): the ions interact with each "
    "other in the coupled state (within the NNP cutoff) and the result includes that ion-pair contribution.",
    "NVT at the packed (experimental) density: ΔF ≈ ΔG up to O(1/N) and p ΔV terms, which are small here.",
    "Statistical errors only: the NNP's own error, finite-size effects and quadrature error (see convergence) "
    "are not included in delta_g_solv_err_kJ_mol.",
]


def run_blob_uuid(solvation_id: str) -> str:
    return f"solvation:{solvation_id}:run"


def window_blob_uuid(solvation_id: str, leg: str, lam: float) -> str:
    return f"solvation:{solvation_id}:{leg}:{lam:.12f}"


def put_ti_docs(store: Store, docs: list[dict[str, Any]]) -> None:
    """Write ``ti_run``/``ti_window`` docs into the blob store (GridFS needs ``solvation_id`` as metadata)."""
    if isinstance(store, GridFSStore):
        store.update(docs, key="blob_uuid", additional_metadata=["solvation_id", "last_updated"])
    else:
        store.update(docs, key="blob_uuid")


def solvation_record(doc: SolvationDocument) -> dict[str, Any]:
    """The stored form of a document: JSON types, except ``last_updated`` kept a datetime (for incremental builds)."""
    return doc.model_dump(mode="json") | {"last_updated": doc.last_updated}


@lru_cache(maxsize=1)
def _salt_table() -> dict[str, dict[str, str]]:
    with resources.files("electrodb.data").joinpath("hydration_free_energy_salts.csv").open() as fh:
        return {row["salt"]: row for row in csv.DictReader(fh)}


def experimental_salt_hydration(salt: str) -> tuple[float | None, str]:
    """Neutral-salt hydration free energy (kJ/mol) from the Marcus (2015) set sum, and where it came from."""
    row = _salt_table().get(salt)
    if row is None or not row.get("sum_Marcus2015_set_kJ_mol"):
        return None, "no experimental neutral-salt value shipped for this salt"
    return (
        float(row["sum_Marcus2015_set_kJ_mol"]),
        "sum of single-ion hydration free energies, Y. Marcus, Ions in Solution and their Solvation (Wiley, 2015), "
        "via electrodb/data/hydration_free_energy_salts.csv (secondary transcription; one table only)",
    )


# --------------------------------------------------------------------------- schema


class TIWindowSummary(BaseModel):
    """One λ window: ⟨∂U/∂λ⟩ with its autocorrelation-corrected standard error (eV)."""

    leg: str
    lam: float
    mean_eV: float | None = None
    sem_eV: float | None = None
    statistical_inefficiency: float | None = None
    n_samples: int = 0
    n_effective: float | None = None
    n_steps: int = 0
    mean_binding_eV: float | None = Field(None, description="⟨E_full − E_solv − E_ions⟩ (coupling leg)")
    mean_wall_eV: float | None = Field(None, description="⟨W⟩ (eV)")
    mean_temperature_K: float | None = None
    status: str = "ok"
    status_reason: str | None = None


class LegResult(BaseModel):
    leg: str
    n_windows: int
    delta_f_kJ_mol: float
    error_kJ_mol: float
    lambdas: list[float]
    weights: list[float]


class ConvergenceRow(BaseModel):
    """ΔF from the Gauss–Legendre rule of order ``n_windows`` on both legs (windows actually run at its nodes)."""

    n_windows: int
    delta_f_cavity_kJ_mol: float
    delta_f_coupling_kJ_mol: float
    delta_f_alchemical_kJ_mol: float
    error_kJ_mol: float


class SolvationDocument(BaseModel):
    """Solvation free energy of one formula unit (kJ/mol per formula unit unless a name says otherwise)."""

    model_config = ConfigDict(extra="allow")

    solvation_id: str
    status: str = Field(description="'completed', 'incomplete' (windows missing) or 'unstable'")
    status_reason: str | None = None
    salt: str
    cation: str
    anion: str
    nu_cation: int
    nu_anion: int
    charges: list[int]
    n_waters: int
    n_atoms: int
    box_length_A: float
    molarity: float = Field(description="mol/L of the box (one formula unit)")
    temperature: float = Field(description="K")
    model_id: str
    model: dict[str, Any] = Field(default_factory=dict, description="ModelIdentity of the NNP")
    method: str = METHOD
    windows: list[TIWindowSummary] = Field(default_factory=list)
    legs: dict[str, LegResult] = Field(default_factory=dict)
    delta_f_cavity_kJ_mol: float | None = None
    delta_f_coupling_kJ_mol: float | None = None
    delta_f_alchemical_kJ_mol: float | None = Field(None, description="ΔF_cavity + ΔF_coupling (Ben-Naim ΔG*)")
    delta_f_alchemical_err_kJ_mol: float | None = None
    delta_f_alchemical_with_lr_kJ_mol: float | None = None
    standard_state_correction_kJ_mol: float | None = Field(None, description="ν RT ln(c° RT/p°)")
    standard_state_per_ion_kJ_mol: float | None = None
    long_range_correction_kJ_mol: float | None = Field(None, description="Born term beyond born_radius_A")
    born_radius_A: float | None = None
    dielectric_constant: float | None = None
    gas_reference_correction_kJ_mol: float | None = None
    delta_g_solv_kJ_mol: float | None = Field(None, description="ΔG° without the long-range correction")
    delta_g_solv_err_kJ_mol: float | None = None
    delta_g_solv_with_lr_kJ_mol: float | None = None
    experimental_kJ_mol: float | None = None
    experimental_source: str = ""
    deviation_kJ_mol: float | None = Field(None, description="ΔG°_solv − experiment")
    deviation_with_lr_kJ_mol: float | None = None
    convergence: list[ConvergenceRow] = Field(default_factory=list)
    conventions: str = CONVENTIONS
    caveats: list[str] = Field(default_factory=lambda: list(CAVEATS))
    provenance: dict[str, Any] = Field(default_factory=dict)
    last_updated: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- assembly


def _summaries(
    windows: list[dict[str, Any]], discard: float
) -> tuple[list[TIWindowSummary], dict[str, dict[float, TIWindowSummary]]]:
    summaries, by_leg = [], {leg: {} for leg in LEGS}
    for w in sorted(windows, key=lambda x: (LEGS.index(x["leg"]), x["lam"])):
        s = TIWindowSummary(
            leg=w["leg"],
            lam=w["lam"],
            n_samples=len(w.get("samples", [])),
            n_steps=w.get("n_steps", 0),
            mean_binding_eV=w.get("mean_binding_eV"),
            mean_wall_eV=w.get("mean_wall_eV"),
            mean_temperature_K=w.get("mean_temperature_K"),
            status=w.get("status", "ok"),
            status_reason=w.get("status_reason"),
        )
        if s.status == "ok":
            try:
                est = window_statistics(w["samples"], discard)
                s.mean_eV, s.sem_eV = est.mean, est.sem
                s.statistical_inefficiency, s.n_effective = est.statistical_inefficiency, est.n_effective
            except ValueError as exc:
                s.status, s.status_reason = "too_short", str(exc)
        summaries.append(s)
        by_leg[s.leg][round(s.lam, 12)] = s
    return summaries, by_leg


def _estimate(by_leg: dict[float, TIWindowSummary], order: int) -> TIResult:
    good = [s for s in by_leg.values() if s.status == "ok"]
    return leg_estimate([s.lam for s in good], [s.mean_eV for s in good], [s.sem_eV for s in good], order)


def assemble_solvation_document(
    run: dict[str, Any], windows: list[dict[str, Any]], analysis: dict[str, Any] | None = None, builder: str = ""
) -> SolvationDocument:
    """The ``solvation`` document of a TI run from its windows (see the module docstring).

    ``analysis`` overrides fields of the run's ``TIAnalysisSettings`` (discard_fraction, born_radius_A,
    dielectric_constant, standard_pressure_Pa, standard_concentration_mol_L, gas_phase_ion_energies_eV).
    """
    ti = run["ti"]
    opts = {**ti.get("analysis", {}), **(analysis or {})}
    exp, exp_source = experimental_salt_hydration(run["salt"])
    base = {
        k: run[k]
        for k in (
            "solvation_id", "salt", "cation", "anion", "nu_cation", "nu_anion", "charges", "n_waters", "n_atoms",
            "box_length_A", "molarity", "temperature", "model_id",
        )
    }  # fmt: skip
    summaries, by_leg = _summaries(windows, opts.get("discard_fraction", 0.2))
    provenance = {
        "model_id": run["model_id"],
        "model": run.get("model_identity", {}),
        "model_reference": run.get("model"),
        "md": run["md"],
        "ti": ti,
        "analysis": opts,
        "packing": run.get("packing", {}),
        "code_version": __version__,
        "run_code_version": run.get("code_version"),
        "builder": builder,
        "isolated_ion_energies_eV": run.get("isolated_ion_energies_eV", {}),
        "wall_sigma_A": run.get("wall_sigma_A", {}),
        "window_wall_time_s": float(sum(w.get("wall_time_s", 0.0) for w in windows)),
    }
    doc = SolvationDocument(
        **base,
        status="completed",
        model=run.get("model_identity", {}),
        windows=summaries,
        experimental_kJ_mol=exp,
        experimental_source=exp_source,
        provenance=provenance,
    )
    if run.get("status", "ok") != "ok":
        doc.status, doc.status_reason = run["status"], run.get("status_reason")
        return doc
    main = {"cavity": ti.get("n_windows_cavity") or ti["n_windows"], "coupling": ti["n_windows"]}
    bad = [s for s in summaries if s.status != "ok"]
    try:
        results = {leg: _estimate(by_leg[leg], main[leg]) for leg in LEGS}
    except KeyError as exc:
        doc.status = "unstable" if any(s.status == "unstable" for s in bad) else "incomplete"
        detail = "; ".join(f"{s.leg} λ={s.lam:.4f}: {s.status_reason}" for s in bad)
        doc.status_reason = f"{exc.args[0]}" + (f" ({detail})" if detail else "")
        return doc
    for leg, r in results.items():
        doc.legs[leg] = LegResult(
            leg=leg,
            n_windows=main[leg],
            delta_f_kJ_mol=r.delta_f * EV_TO_KJ_PER_MOL,
            error_kJ_mol=r.error * EV_TO_KJ_PER_MOL,
            lambdas=r.lambdas.tolist(),
            weights=r.weights.tolist(),
        )
    for order in sorted({main["coupling"], main["cavity"], *ti.get("convergence_orders", [])}):
        try:
            cav, coup = _estimate(by_leg["cavity"], order), _estimate(by_leg["coupling"], order)
        except KeyError:
            continue
        doc.convergence.append(
            ConvergenceRow(
                n_windows=order,
                delta_f_cavity_kJ_mol=cav.delta_f * EV_TO_KJ_PER_MOL,
                delta_f_coupling_kJ_mol=coup.delta_f * EV_TO_KJ_PER_MOL,
                delta_f_alchemical_kJ_mol=(cav.delta_f + coup.delta_f) * EV_TO_KJ_PER_MOL,
                error_kJ_mol=math.hypot(cav.error, coup.error) * EV_TO_KJ_PER_MOL,
            )
        )
    born = opts.get("born_radius_A") or (run.get("model_identity") or {}).get("r_max")
    eps = opts.get("dielectric_constant") or water_dielectric_constant(run["temperature"])
    gas_energies = opts.get("gas_phase_ion_energies_eV")
    gas_ref = None
    if gas_energies:
        nnp = run.get("isolated_ion_energies_eV", {})
        missing = [n for n in (run["cation"], run["anion"]) if n not in gas_energies or n not in nnp]
        if missing:
            raise ValueError(f"gas-reference correction needs NNP and reference energies of {missing}")
        gas_ref = sum(
            nu * (nnp[name] - gas_energies[name])
            for name, nu in ((run["cation"], run["nu_cation"]), (run["anion"], run["nu_anion"]))
        )
    cycle = solvation_cycle(
        results["cavity"],
        results["coupling"],
        run["charges"],
        run["temperature"],
        born,
        eps,
        opts.get("standard_pressure_Pa", 101325.0),
        opts.get("standard_concentration_mol_L", 1.0),
        gas_ref,
    )
    doc.delta_f_cavity_kJ_mol, doc.delta_f_coupling_kJ_mol = cycle.delta_f_cavity, cycle.delta_f_coupling
    doc.delta_f_alchemical_kJ_mol, doc.delta_f_alchemical_err_kJ_mol = (
        cycle.delta_f_alchemical,
        cycle.delta_f_alchemical_err,
    )
    doc.standard_state_correction_kJ_mol = cycle.standard_state
    doc.standard_state_per_ion_kJ_mol = cycle.standard_state_per_ion
    doc.long_range_correction_kJ_mol, doc.born_radius_A, doc.dielectric_constant = cycle.long_range, born, eps
    doc.gas_reference_correction_kJ_mol = cycle.gas_reference
    doc.delta_g_solv_kJ_mol, doc.delta_g_solv_err_kJ_mol = cycle.delta_g, cycle.delta_g_err
    doc.delta_g_solv_with_lr_kJ_mol = cycle.delta_g_with_lr
    if cycle.long_range is not None:
        doc.delta_f_alchemical_with_lr_kJ_mol = cycle.delta_f_alchemical + cycle.long_range
    if exp is not None:
        doc.deviation_kJ_mol = cycle.delta_g - exp
        doc.deviation_with_lr_kJ_mol = None if cycle.delta_g_with_lr is None else cycle.delta_g_with_lr - exp
    if bad:  # extra (convergence) windows failed, the main estimate stands
        doc.status_reason = "; ".join(f"{s.leg} λ={s.lam:.4f}: {s.status} ({s.status_reason})" for s in bad)
    if not all(np.isfinite([cycle.delta_g, cycle.delta_g_err])):
        doc.status, doc.status_reason = "unstable", "non-finite free energy"
    return doc
