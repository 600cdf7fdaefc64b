"""maggma group builder: RDFs across a concentration series -> activity and osmotic coefficients (``thermo``).

Per system: Kirkwood–Buff integrals of the ion–ion and ion–water g(r) up to about half the box (Ganguly
closed-system correction, then Krüger finite-volume extrapolation) give a_cc = 1 + ∂ln y±/∂ln c
(Weerasinghe & Smith), with a convergence verdict (box size, ion counts, range, error, and the sampling of its
block series: n_eff, stationarity, ion travel). a_cc, its error, n_eff and t_equil_ps come from the structure
document's ``kb`` entry (the linearised a_cc per time block after the equilibration cut,
:mod:`electrodb.analysis.kb_series`); the KB integrals of the stored g(r) are kept beside it for inspection.
Per group of systems with the same salt, temperature and model: a_cc(c) = a_cc,DH(c) + polynomial is fitted to
the converged systems (weighted by their errors) and integrated analytically to ln y±, converted to the molal
scale, then φ(m) by Gibbs–Duhem and ln a_w = −ν m M_w φ, all with propagated covariances
(:mod:`electrodb.analysis.acc_fit`). Fewer than three converged concentrations give status ``insufficient`` with
the reason, never an extrapolated γ±. Equations and assumptions: ``docs/methods-thermodynamics.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from electrodb import __version__
from electrodb.analysis.acc_fit import activity_series_from_acc
from electrodb.analysis.activity import (
    M_WATER,
    pitzer_ln_gamma,
    pitzer_parameters,
    pitzer_phi,
    reference_activity,
)
from electrodb.analysis.convergence import ConvergenceTargets, Verdict, worst
from electrodb.analysis.kirkwood_buff import KB_MIN_RANGE_A, acc_verdict, activity_derivative, kb_integral
from electrodb.systems.chemistry import AVOGADRO, parse_salt
from electrodb.utils.provenance import as_datetime, stable_hash

__all__ = ["MIN_CONCENTRATIONS", "ThermoBuilder", "system_activity_derivative"]

MIN_CONCENTRATIONS = 3
ION_SIZE_A = 4.0  # extended Debye–Hückel ion-size parameter (Å), documented in docs/methods-thermodynamics.md
_KB_PAIRS = {
    "pp": ("cation-cation", "n_cations", True),
    "mm": ("anion-anion", "n_anions", True),
    "pm": ("cation-anion", "n_anions", False),
    "pw": ("cation-O_w", "n_waters", False),
    "mw": ("anion-O_w", "n_waters", False),
}


def system_activity_derivative(
    structure: dict[str, Any],
    counts: dict[str, int],
    volume_A3: float,
    nu_plus: int,
    nu_minus: int,
    targets: ConvergenceTargets | None = None,
) -> dict[str, Any]:
    """a_cc with its error, its convergence status and the five KB integrals (Å³) for one system.

    The g(r) of the structure document (normalised as in ``electrodb.analysis.structure``) are integrated over
    their whole range, which the properties builder sets to half the smallest cell width; the range and the
    1/L fit window used are returned as ``kb_range_A`` and ``kb_fit_window_A``. ``a_cc_status`` /
    ``a_cc_criterion`` / ``a_cc_reason`` come from :func:`electrodb.analysis.kirkwood_buff.acc_verdict` (box,
    ions, error, range) together with the sampling verdict of a_cc's block series.

    a_cc itself, its error, ``n_eff`` and ``t_equil_ps`` come from the structure document's ``kb`` entry: the
    properties builder computes a_cc of the frames after the equilibration cut with the error of its linearised
    block series (:mod:`electrodb.analysis.kb_series`), which counts correlated frames as what they are. A
    structure document without that entry (an older build, or a g(r) from elsewhere) gives a_cc from its
    stored g(r) and block errors, at best ``unconverged``: that error cannot be checked for correlation or a
    transient. When a_cc cannot be computed (status ``insufficient``) the dict has no ``a_cc`` key and an
    ``error`` entry.
    """
    box_length = float(np.cbrt(volume_A3))
    n_formula = counts["n_cations"] / nu_plus
    c_salt = n_formula / AVOGADRO / (volume_A3 * 1e-27)
    ions = {"cations": int(counts["n_cations"]), "anions": int(counts["n_anions"])}
    results, integrals, kb_range, table_error = _kb_table(structure, counts, volume_A3)
    out: dict[str, Any] = {"molarity": float(c_salt), "kb_integrals": integrals, "n_eff": None, "t_equil_ps": None}
    kb = structure.get("kb") or {}
    if kb.get("a_cc") is not None and kb.get("status"):
        # a_cc of the production frames, its error and sampling verdict from its block series (analysis.kb_series)
        a_cc, err = float(kb["a_cc"]), kb.get("a_cc_err")
        factor = kb.get("run_factor") if kb.get("run_longer_helps") is not False else float("inf")
        sampled = Verdict(kb["status"], kb.get("criterion", ""), kb.get("reason", ""), factor)
        verdict = worst(acc_verdict(a_cc, err, box_length, ions, kb_range, targets), sampled)
        out.update(n_eff=kb.get("n_eff"), t_equil_ps=kb.get("t_equil_ps"), halves_z=kb.get("halves_z"))
        if table_error:
            out["kb_integrals_error"] = table_error
    elif table_error:
        criterion = acc_verdict(None, None, box_length, ions, float("inf"), targets).criterion
        verdict = Verdict("insufficient", criterion, table_error)
        return {**out, "error": f"no a_cc: {table_error}", **_verdict_fields(verdict)}
    else:
        a_cc, err = (None, None)
        if len(results) == len(_KB_PAIRS):
            a_cc, err = activity_derivative(
                c_salt, *(results[k] for k in _KB_PAIRS), nu_plus=nu_plus, nu_minus=nu_minus
            )
        verdict = acc_verdict(a_cc, err, box_length, ions, kb_range, targets)
        if kb:  # the properties builder tried and could not compute the series
            why = kb.get("error") or kb.get("reason") or "unknown"
            verdict = worst(verdict, Verdict("insufficient", kb.get("criterion", ""), f"no a_cc block series: {why}"))
            out["t_equil_ps"] = kb.get("t_equil_ps")
        elif a_cc is not None and np.isfinite(a_cc):
            verdict = worst(verdict, _NO_SERIES)
    out.update(kb_range_A=kb_range, box_length_A=box_length, **_verdict_fields(verdict))
    if a_cc is None or not np.isfinite(a_cc):
        return {**out, "error": f"no a_cc: {kb.get('error') or verdict.reason}"}
    if "pp" in results:
        out["kb_fit_window_A"] = list(results["pp"].fit_window)
    out.update(a_cc=float(a_cc), a_cc_err=_finite_or_none(err))
    return out


def _kb_table(
    structure: dict[str, Any], counts: dict[str, int], volume_A3: float
) -> tuple[dict[str, Any], dict[str, Any], float, str]:
    """The five KB integrals of the stored (production) g(r), for inspection and for structure documents without
    a_cc's block series: results, their stored form, the integration range (Å) and an error ('' when none)."""
    results: dict[str, Any] = {}
    integrals: dict[str, Any] = {}
    kb_range = float("inf")
    try:
        for key, (pair, count_field, same) in _KB_PAIRS.items():
            rdf = structure["rdf"].get(pair)
            if rdf is None:
                raise ValueError(f"structure document has no {pair} g(r)")
            blocks = np.asarray(rdf["g_blocks"]) if "g_blocks" in rdf else None
            r = np.asarray(rdf["r"])
            kb_range = min(kb_range, float(r[-1]))
            if kb_range < KB_MIN_RANGE_A:
                break
            res = kb_integral(r, np.asarray(rdf["g"]), float(counts[count_field]), volume_A3, same, g_blocks=blocks)
            results[key] = res
            integrals[key] = {
                "pair": pair,
                "G_A3": float(res.value),
                "G_err_A3": None if not np.isfinite(res.uncertainty) else float(res.uncertainty),
                "methods": {k: float(v) for k, v in res.values.items()},
                "method_errors_A3": {k: _finite_or_none(v) for k, v in res.uncertainties.items()},
                "fit_window_A": list(res.fit_window),
                "plateau_A": list(res.plateau),
            }
    except ValueError as exc:
        return results, integrals, kb_range, str(exc)
    return results, integrals, kb_range, ""


#: Verdict of an a_cc whose structure document has no block series (written before the series existed).
_NO_SERIES = Verdict(
    "unconverged",
    "a_cc error from its block series (n_eff, stationarity)",
    "no a_cc block series in the structure document (built by an older ElectroDB): its error cannot be checked "
    "for correlated frames or a transient; rebuild the structure",
)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """``a_cc_status``, ``a_cc_criterion``, ``a_cc_reason`` and, for a failure with a run factor,
    ``a_cc_run_factor`` (or ``a_cc_run_longer_helps``: false)."""
    return {f"a_cc_{k}": v for k, v in verdict.as_dict().items()}


class ThermoBuilder(Builder):
    """Groups electrolyte summaries by (salt, temperature, model) and writes one ``thermo`` document per group."""

    def __init__(
        self,
        electrolytes: Store,
        structure: Store,
        trajectories: Store,
        thermo: Store,
        rebuild: bool = False,
        **kwargs: Any,
    ) -> None:
        """``rebuild`` recomputes every group (upserted in place); :meth:`prune` drops groups with no member."""
        self.rebuild = rebuild
        self.electrolytes, self.structure, self.trajectories, self.thermo = (
            electrolytes,
            structure,
            trajectories,
            thermo,
        )
        super().__init__(sources=[electrolytes, structure, trajectories], targets=[thermo], chunk_size=10, **kwargs)

    @staticmethod
    def group_id(salt: str, temperature: float, model_id: str) -> str:
        return stable_hash({"salt": salt, "temperature": round(temperature, 2), "model_id": model_id})

    def get_items(self) -> Iterator[list[dict[str, Any]]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for doc in self.electrolytes.query(
            {},
            properties=[
                "electrolyte_id",
                "salt",
                "temperature",
                "model_id",
                "molality",
                "trajectory_ids",
                "last_updated",
            ],
        ):
            groups[self.group_id(doc["salt"], doc["temperature"], doc["model_id"])].append(doc)
        built = {
            d["thermo_id"]: d
            for d in self.thermo.query({}, properties=["thermo_id", "last_updated", "electrolyte_ids"])
        }
        for gid, members in groups.items():
            newest = max(as_datetime(m.get("last_updated")) for m in members)
            old = built.get(gid)
            ids = sorted(m["electrolyte_id"] for m in members)
            fresh = old and as_datetime(old.get("last_updated")) >= newest and old.get("electrolyte_ids") == ids
            if fresh and not self.rebuild:
                continue
            yield members

    def process_item(self, members: list[dict[str, Any]]) -> dict[str, Any]:
        first = members[0]
        salt = parse_salt(first["salt"])
        temperature = float(first["temperature"])
        systems = []
        for member in sorted(members, key=lambda d: d["molality"]):
            for tid in member["trajectory_ids"]:
                structure = self.structure.query_one({"trajectory_id": tid})
                meta = self.trajectories.query_one(
                    {"trajectory_id": tid},
                    properties=[
                        "n_cations",
                        "n_anions",
                        "n_waters",
                        "box_length_A",
                        "targets",
                        "temperature_status",
                        "temperature_reason",
                    ],
                )
                entry: dict[str, Any] = {
                    "electrolyte_id": member["electrolyte_id"],
                    "trajectory_id": tid,
                    "molality": float(member["molality"]),
                }
                try:
                    volume = self._volume(tid, meta)
                    targets = ConvergenceTargets().with_overrides(meta.get("targets"))
                    entry.update(
                        system_activity_derivative(
                            structure, meta, volume, salt.nu_cation, salt.nu_anion, targets=targets
                        )
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    entry["error"] = f"no a_cc: {exc}"
                wrong_temperature = meta.get("temperature_status") == "unconverged"
                if entry.get("a_cc_status") == "converged" and wrong_temperature:
                    entry["a_cc_status"] = "unconverged"  # not a result at the labelled temperature
                    entry["a_cc_reason"] = f"run not at its labelled temperature: {meta.get('temperature_reason')}"
                systems.append(entry)
        usable = [s for s in systems if "a_cc" in s and np.isfinite(s["a_cc"]) and s["a_cc"] > 0]
        # Only systems whose a_cc passed its convergence criteria enter the concentration series.
        fitted = [s for s in usable if s.get("a_cc_status", "converged") == "converged"]
        doc: dict[str, Any] = {
            "thermo_id": self.group_id(first["salt"], temperature, first["model_id"]),
            "salt": salt.formula,
            "cation": salt.cation.name,
            "anion": salt.anion.name,
            "temperature": temperature,
            "model_id": first["model_id"],
            "electrolyte_ids": sorted(m["electrolyte_id"] for m in members),
            "systems": systems,
            "code_version": __version__,
            "method": {
                "kb": "Ganguly closed-system correction + Krüger 1/L extrapolation, block errors",
                "a_cc": "Weerasinghe & Smith electroneutral salt component",
                "series_input": "systems with a_cc_status 'converged' only; replicas at one molality merged "
                "(mean a_cc, error sqrt(sum err^2)/n)",
                "fit": f"a_cc(c) = a_cc,DH(c; a = {ION_SIZE_A} Å) + sum_k b_k c^k, k = 1..min(2, n-1), weighted "
                "linear least squares on the molar scale (acc_fit.fit_acc)",
                "integration": "analytic: ln y± = ln y±,DH(c; a) + sum_k b_k c^k / k; ln γ± = ln y± + ln[c/(m ρ_w)] "
                "with ln[c/(m ρ_w)] quadratic in m through the series; φ by Gibbs–Duhem of the fitted ln γ± "
                "(Gauss–Legendre); errors from the fit covariance (correlated between molalities)",
            },
            "experiment": self._experiment(salt.formula, [s["molality"] for s in usable]),
        }
        molalities = sorted({round(s["molality"], 6) for s in fitted})
        if len(molalities) < MIN_CONCENTRATIONS:
            left_out = len(usable) - len(fitted)
            doc.update(
                status="insufficient",
                criterion=f">= {MIN_CONCENTRATIONS} concentrations with converged a_cc",
                reason=f"{len(molalities)} concentration(s) with converged a_cc < {MIN_CONCENTRATIONS}"
                + (f" ({left_out} system(s) with unconverged a_cc left out)" if left_out else "")
                + ": a_cc is reported per system, but γ± and φ need a concentration series and are not extrapolated",
                series=None,
            )
            return doc
        series, verdict = self._series(fitted, salt, temperature)
        doc.update(**verdict.as_dict(), series=series)
        return doc

    def prune(self) -> int:
        """Remove ``thermo`` documents of groups that no longer have any summary; return how many."""
        groups = {
            self.group_id(d["salt"], d["temperature"], d["model_id"])
            for d in self.electrolytes.query({}, properties=["salt", "temperature", "model_id"])
        }
        gone = sorted(set(self.thermo.distinct("thermo_id")) - groups)
        if gone:
            self.thermo.remove_docs({"thermo_id": {"$in": gone}})
        return len(gone)

    def _volume(self, tid: str, meta: dict[str, Any]) -> float:
        # The transport builder records the mean box length of the production run (NVT: the box used).
        length = meta.get("box_length_A")
        if not length:
            raise ValueError(f"trajectory {tid} has no box length")
        return float(length) ** 3

    @staticmethod
    def _series(fitted: list[dict[str, Any]], salt: Any, temperature: float) -> tuple[dict[str, Any] | None, Verdict]:
        """γ±, φ and a_w of the series from a Debye–Hückel-shaped fit of a_cc (``acc_fit``), and its verdict."""
        # Merge replicas at the same molality (mean a_cc, combined error; a missing error makes it NaN).
        by_m: dict[float, list[dict[str, Any]]] = defaultdict(list)
        for s in fitted:
            by_m[round(s["molality"], 6)].append(s)
        m = np.array(sorted(by_m))
        c = np.array([np.mean([s["molarity"] for s in by_m[k]]) for k in m])
        acc = np.array([np.mean([s["a_cc"] for s in by_m[k]]) for k in m])
        acc_err = np.array(
            [
                np.sqrt(np.sum([np.nan if s.get("a_cc_err") is None else s["a_cc_err"] ** 2 for s in by_m[k]]))
                / len(by_m[k])
                for k in m
            ]
        )
        fit, ser = activity_series_from_acc(
            m,
            c,
            acc,
            acc_err,
            z_plus=salt.cation.charge,
            z_minus=salt.anion.charge,
            ion_size=ION_SIZE_A,
            T=temperature,
        )
        head = f">= {MIN_CONCENTRATIONS} concentrations with converged a_cc; "
        if ser is None:
            return None, Verdict(fit.verdict.status, head + fit.verdict.criterion, fit.verdict.reason)
        verdict = Verdict(ser.verdict.status, head + ser.verdict.criterion, ser.verdict.reason)
        return {
            "molality": ser.molality.tolist(),
            "molarity": ser.molarity.tolist(),
            "a_cc": acc.tolist(),
            "a_cc_err": acc_err.tolist(),
            "ln_y": ser.ln_y.tolist(),
            "ln_y_err": ser.ln_y_err.tolist(),
            "ln_gamma": ser.ln_gamma.tolist(),
            "ln_gamma_err": ser.ln_gamma_err.tolist(),
            "ln_gamma_cov": ser.ln_gamma_cov.tolist(),
            "gamma": ser.gamma.tolist(),
            "gamma_err": ser.gamma_err.tolist(),
            "phi": ser.phi.tolist(),
            "phi_err": ser.phi_err.tolist(),
            "phi_cov": ser.phi_cov.tolist(),
            "ln_a_w": ser.ln_a_w.tolist(),
            "ln_a_w_err": ser.ln_a_w_err.tolist(),
            "a_w": ser.a_w.tolist(),
            "a_w_err": ser.a_w_err.tolist(),
            "validity_molality": [float(ser.molality[0]), float(ser.molality[-1])],
            "extrapolated": False,
            "molal_conversion": {
                "form": "ln[c/(m rho_w)] = sum_j d_j m^j",
                "params": ser.scale_params.tolist(),
                "max_residual": ser.scale_max_residual,
            },
            "trajectory_ids": sorted(s["trajectory_id"] for s in fitted),
            "fit": fit.as_dict(),
            "water_molar_mass_kg_mol": M_WATER,
        }, verdict

    @staticmethod
    def _experiment(salt: str, molalities: list[float]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            ref = reference_activity(salt)
            out["tables"] = {
                "gamma": {
                    "molality": list(map(float, ref.gamma.molality)),
                    "value": list(map(float, ref.gamma.value)),
                    "source": sorted(set(map(str, ref.gamma.source))),
                },
                "phi": {
                    "molality": list(map(float, ref.phi.molality)),
                    "value": list(map(float, ref.phi.value)),
                    "source": sorted(set(map(str, ref.phi.source))),
                },
            }
        except (KeyError, ValueError, AttributeError):
            pass
        try:
            params = pitzer_parameters(salt)
            m = np.array(sorted(molalities)) if molalities else np.array([])
            inside = m[m <= params.max_molality]
            out["pitzer_at_series"] = {
                "molality": inside.tolist(),
                "gamma": np.exp(pitzer_ln_gamma(inside, params)).tolist(),
                "phi": pitzer_phi(inside, params).tolist(),
                "source": params.source,
                "max_molality": params.max_molality,
            }
        except (KeyError, ValueError):
            pass
        return out

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        if items:
            self.thermo.update([{**item, "last_updated": now} for item in items], key="thermo_id")
