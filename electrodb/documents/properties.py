"""Pydantic schemas of the property documents the builders write and the API serves.

Units live in field names or descriptions: Å, ps, K, mol/kg, and diffusion in 1e-9 m²/s. The summary
(``electrolytes``) flattens the headline numbers into top-level fields so that the API can filter and sort on
them and the export can write them as columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from electrodb import __version__
from electrodb.utils.provenance import stable_hash, utcnow

__all__ = [
    "STATUS_SUFFIXES",
    "WITHHELD_SUFFIXES",
    "ElectrolyteSummary",
    "KineticsDoc",
    "PairingDoc",
    "Provenance",
    "StructureDoc",
    "TransportDoc",
    "withhold_insufficient",
]


class Provenance(BaseModel):
    """Where a number came from: trajectories, model, MD settings, code version and analysis parameters."""

    model_config = ConfigDict(extra="allow")

    trajectory_ids: list[str]
    model_id: str
    model: dict[str, Any] = Field(default_factory=dict)
    md: dict[str, Any] = Field(default_factory=dict)
    code_version: str = __version__
    analysis: dict[str, Any] = Field(default_factory=dict)
    builder: str = ""


class _PropertyDoc(BaseModel):
    """Fields every per-trajectory property document carries (the API filters on them)."""

    model_config = ConfigDict(extra="allow")

    trajectory_id: str
    electrolyte_id: str
    system_id: str
    salt: str
    cation: str
    anion: str
    molality: float = Field(description="mol/kg")
    temperature: float = Field(description="K")
    model_id: str
    campaign_ids: list[str] = Field(default_factory=list)
    n_frames: int
    duration_ps: float
    provenance: Provenance
    last_updated: datetime = Field(default_factory=utcnow)


class StructureDoc(_PropertyDoc):
    """Partial RDFs and first-shell analysis.

    ``rdf[pair]`` = ``{"r": [...] Å, "g": [...], "g_err": [...], "n": [...] running coordination number}``;
    ``shells[pair]`` = ``{"r_peak", "g_peak", "r_min", "cn", "cn_err", "significance", "detection",
    "detection_reason", "resolved", "resolution_reason", "n_exchange_events", "exchange_r_out_A", "n_eff",
    "stat_inefficiency", "halves_z", "t_equil_ps", "status", "criterion", "reason", "run_factor", "peak"}``
    (``detection``: ok / no_peak / no_minimum; ``resolved``: a first shell with an excluded core, and
    ``resolution_run_factor`` how much longer the run must be for it; ``n_eff``: effectively independent samples
    of the CN series after the equilibration cut ``t_equil_ps``; ``status``: the convergence verdict of the CN;
    ``run_factor``: how much longer the run must be for it to pass, :class:`~electrodb.analysis.convergence.Verdict`).
    ``peak`` is the first-peak position with its own series and verdict (:mod:`electrodb.analysis.shell_peak`:
    ``r_peak``, ``r_peak_err``, ``n_eff``, ``stat_inefficiency``, ``halves_z``, ``t_equil_ps``, ``travel_A``,
    ``smooth_A``, ``status``, ``criterion``, ``reason``, ``run_factor``); the ``r_*`` headline properties read it.
    ``kb`` holds the per-block Kirkwood–Buff a_cc series and its verdict; ``t_equil_ps``,
    ``equilibration_cuts_ps`` (each series' own cut) and ``n_production_frames`` say which frames the RDFs and
    shells come from. Pair names are
    ``"cation-O_w"``, ``"cation-H_w"``, ``"anion-O_w"``, ``"anion-H_w"``, ``"cation-anion"``,
    ``"cation-cation"``, ``"anion-anion"``, ``"O_w-O_w"``.
    """

    rdf: dict[str, dict[str, Any]]
    shells: dict[str, dict[str, Any]]
    n_blocks: int


class TransportDoc(_PropertyDoc):
    """Self-diffusion per species (``cation``, ``anion``, ``water``).

    ``diffusion[species]`` = ``{"D_pbc", "D_pbc_err" (finite box), "D", "D_err" (Yeh–Hummer corrected; all
    1e-9 m²/s), "yeh_hummer_correction", "yeh_hummer_correction_err", "viscosity_Pa_s", "viscosity_err_Pa_s",
    "viscosity_source", "viscosity_note", "fit_window_ps", "loglog_slope", "rms_displacement_A", "n_atoms",
    "n_eff", "t_equil_ps", "halves_z", "flatness_z", "status", "criterion", "reason"}`` (``n_eff``: independent
    samples behind D_err; ``flatness_z``: early vs late lags of the fit window; ``status`` in the vocabulary of
    :mod:`electrodb.analysis.convergence`; D and D_pbc are kept when not converged, for inspection);
    ``msd[species]`` = ``{"t_ps": [...], "msd_A2": [...]}``.

    ``conductivity`` (empty for documents built before it existed) holds the collective transport of the ions
    (:mod:`electrodb.analysis.conductivity`, all S/m): ``sigma_S_m``, ``sigma_err_S_m``, ``sigma_ci68_S_m`` (the
    asymmetric 68 % interval of a relative error) and σ's verdict with ``n_eff`` (time origins), ``t_equil_ps``,
    ``stat_inefficiency``, ``halves_z``, ``flatness_z``, ``fit_window_ps``, ``loglog_slope``, ``n_origins``;
    ``nernst_einstein`` (``sigma_S_m``, ``sigma_err_S_m``, ``t_plus``, ``t_plus_err`` and their verdict),
    ``ionicity`` (``value``, ``err``, ``haven_ratio``, verdict), ``transference`` (Onsager ``t_plus``,
    ``t_plus_err``, verdict), ``onsager[pair]`` (e²L^{ij}: ``L_S_m``, ``L_err_S_m``, ``self_S_m``,
    ``distinct_S_m`` with errors; pairs ``cation-cation``, ``anion-anion``, ``cation-anion``), ``msd`` (``t_ps``,
    ``mscd_A2`` = ⟨|Σ z Δr|²⟩ and ``self_A2`` = Σ z²⟨|Δr|²⟩, e² Å²) and ``fit`` (``window_ps``, ``slope_A2_ps``,
    ``intercept_A2``); a refused input (wrapped positions, a changing number of ions, no charged species) is
    ``insufficient`` with its ``reason`` and no numbers.
    """

    diffusion: dict[str, dict[str, Any]]
    msd: dict[str, dict[str, list[float]]]
    box_length_A: float
    conductivity: dict[str, Any] = Field(default_factory=dict)


class PairingDoc(_PropertyDoc):
    """Ion-pair classification: fractions of free (SSIP), CIP and AGG per ion species, with errors.

    ``pairing`` also holds ``n_contact_events`` (cation–anion contacts formed or broken, with hysteresis),
    ``cutoff_cation_anion_A`` with ``cutoff_source`` (a resolved contact shell, or a fallback kept for inspection
    only), ``n_eff`` and ``t_equil_ps`` of the fraction series, and the verdict ``status``, ``criterion``,
    ``reason``.
    """

    pairing: dict[str, Any]


class KineticsDoc(_PropertyDoc):
    """First-shell water residence times: ``residence[ion]`` with ``tau_ps``, ``tau_err_ps``, ``tau_estimate_ps``
    (kept when the run is too short for ``tau_ps``), ``r_cut_A``, ``cutoff_fallback``, ``run_length_ps`` and the
    verdict ``status``, ``criterion``, ``reason``."""

    residence: dict[str, dict[str, Any]]


#: Suffixes of the per-property summary fields: ``P``, ``P_err``, ``P_status``, ``P_criterion``, ``P_reason``.
STATUS_SUFFIXES: tuple[str, ...] = ("_status", "_criterion", "_reason")
#: Summary fields of a property ``P`` that are null when ``P_status`` is ``insufficient`` (``P`` itself too).
WITHHELD_SUFFIXES: tuple[str, ...] = ("_err", "_n_eff", "_t_equil_ps")


def withhold_insufficient(doc: dict[str, Any]) -> dict[str, Any]:
    """Null the value of every property of a summary whose status is ``insufficient`` (in place; returns ``doc``).

    The one contract for ``insufficient``: there was not enough data for a value, so ``P``, ``P_err``,
    ``P_n_eff`` and ``P_t_equil_ps`` are null wherever a summary is served. The summary builder already writes
    them so; the API, the export and the client apply this as well, so that a database built before the contract
    never shows such a number (rebuild it with ``electrodb build --rebuild`` for its range filters to agree).
    Fields absent from ``doc`` (a projection) stay absent.

    Parameters
    ----------
    doc
        An ``electrolytes`` summary as stored or served (possibly partial).

    Returns
    -------
    dict
        ``doc`` itself.
    """
    for key, status in list(doc.items()):
        if status != "insufficient" or not key.endswith("_status"):
            continue
        prop = key.removesuffix("_status")
        for name in (prop, *(prop + suffix for suffix in WITHHELD_SUFFIXES)):
            if doc.get(name) is not None:
                doc[name] = None
    return doc


class ElectrolyteSummary(BaseModel):
    """One document per (salt, molality, temperature, model): repeat runs merged.

    Each headline property ``P`` of the registry (:data:`electrodb.documents.registry.PROPERTIES`) appears as

    * ``P`` and ``P_err`` (None when not computed);
    * ``P_status``, one of :data:`electrodb.analysis.convergence.STATUSES`: ``converged`` (a result),
      ``unconverged`` (computed, a criterion failed; kept for inspection only, never a result), ``insufficient``
      (not enough data: ``P``, ``P_err``, ``P_n_eff`` and ``P_t_equil_ps`` are None) or ``input`` (taken from a
      correlation or an input, not computed from the run: ``eta`` from Laliberté's correlation or set by the
      user; the fixed density of an NVT run, whose value stays in ``density_input`` while ``density`` is None,
      as it always was). An error of exactly zero is never ``converged``;
    * ``P_criterion`` and ``P_reason`` (why it is not converged, or where an input came from; '' when converged);
    * ``P_n_runs``: the runs the merged value came from;
    * ``P_n_eff``: effectively independent samples behind ``P_err``, summed over those runs (None when a run did
      not record its ``n_eff``); ``P_t_equil_ps``: the largest equilibration cut (ps) among them (None likewise);
    * where experiment exists, ``exp_P`` with ``exp_P_source``.
    """

    model_config = ConfigDict(extra="allow")

    electrolyte_id: str
    salt: str
    cation: str
    anion: str
    nu_cation: int
    nu_anion: int
    cation_charge: int
    anion_charge: int
    cation_radius_A: float | None = None
    anion_radius_A: float | None = None
    molality: float = Field(description="mol/kg")
    temperature: float = Field(description="K")
    model_id: str
    campaign_ids: list[str] = Field(default_factory=list)
    trajectory_ids: list[str]
    n_runs: int
    total_ps: float
    n_atoms: int
    model_name: str | None = Field(None, description="readable model name (model_id is the identity)")
    density_source: str | None = Field(
        None, description="'npt' (computed) or 'input' (fixed, not a result: density_status 'input', density None)"
    )
    density_input: float | None = Field(None, description="the fixed density (kg/m³) when density_source == 'input'")
    eta_source: str | None = Field(
        None,
        description="where the Yeh–Hummer viscosity came from: green_kubo_run (computed from the run) or an input "
        "(laliberte_correlation, user, experimental_water_vogel; eta_status 'input' or, for pure water in a salt "
        "solution, 'unconverged')",
    )
    targets: dict[str, Any] = Field(default_factory=dict, description="convergence targets the statuses used")
    model_trust: str = Field(
        "unaudited",
        description="model-trust verdict of a committee audit (docs/committees.md): trusted, extrapolating, "
        "insufficient or unaudited; the worst over the merged runs",
    )
    model_trust_reason: str = Field("", description="why the model is not trusted here ('' when trusted)")
    model_trust_criterion: str = Field("", description="the rule the verdict applied")
    committee_id: str | None = Field(None, description="committee whose audits gave model_trust")
    committee_name: str | None = None
    refine_round: int | None = Field(None, description="refine round of that committee (0: the first committee)")
    frac_flagged: float | None = Field(
        None, description="fraction of audited frames whose max committee force disagreement σ_F is above threshold"
    )
    sigma_F_max_p95: float | None = Field(
        None, description="95th percentile over audited frames of the per-frame max σ_F (eV/Å), largest over runs"
    )
    n_frames_audited: int = Field(0, description="frames the committee evaluated, over the merged runs")
    superseded_by: str | None = Field(
        None,
        description="electrolyte_id of the same electrolyte run with a refined committee's model: this result stays "
        "queryable but is not the default answer",
    )
    provenance: Provenance
    last_updated: datetime = Field(default_factory=utcnow)


def electrolyte_id(salt: str, molality: float, temperature: float, model_id: str) -> str:
    """Deterministic id of a (salt, molality, T, model) summary; molality to 1e-4 mol/kg, T to 0.01 K."""
    return stable_hash(
        {
            "salt": salt,
            "molality": round(molality, 4),
            "temperature": round(temperature, 2),
            "model_id": model_id,
        }
    )
