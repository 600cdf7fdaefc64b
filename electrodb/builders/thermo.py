"""maggma group builder: RDFs across a concentration series -> activity and osmotic coefficients (``thermo``).

Per system: Kirkwood–Buff integrals of the ion–ion and ion–water g(r) (Ganguly closed-system correction, then
Krüger finite-volume extrapolation; block errors) give a_cc = 1 + ∂ln y±/∂ln c (Weerasinghe & Smith). Per
group of systems with the same salt, temperature and model: ln y±(c) integrated from an extended
Debye–Hückel anchor, converted to the molal scale, then φ(m) by Gibbs–Duhem and ln a_w = −ν m M_w φ.
With fewer than three concentrations a group gets a derivative-only document with the reason, never an
extrapolated γ±. Equations and assumptions: ``docs/methods-thermodynamics.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from electrodb import __version__
from electrodb.analysis.activity import (
    M_WATER,
    ln_gamma_from_ln_y,
    ln_y_from_acc,
    osmotic_coefficient,
    pitzer_ln_gamma,
    pitzer_parameters,
    pitzer_phi,
    reference_activity,
)
from electrodb.analysis.kirkwood_buff import activity_derivative, kb_integral
from electrodb.builders.trajectory import as_datetime
from electrodb.campaign import stable_hash
from electrodb.chemistry import AVOGADRO, parse_salt

__all__ = ["MIN_CONCENTRATIONS", "ThermoBuilder", "system_activity_derivative"]

MIN_CONCENTRATIONS = 3
ANCHOR_MOL_L = 0.01  # Debye–Hückel anchor concentration (mol/L)
ION_SIZE_A = 4.0  # extended Debye–Hückel ion-size parameter (Å), documented in docs/methods-thermodynamics.md
_KB_PAIRS = {
    "pp": ("cation-cation", "n_cations", True),
    "mm": ("anion-anion", "n_anions", True),
    "pm": ("cation-anion", "n_anions", False),
    "pw": ("cation-O_w", "n_waters", False),
    "mw": ("anion-O_w", "n_waters", False),
}


def system_activity_derivative(
    structure: dict[str, Any], counts: dict[str, int], volume_A3: float, nu_plus: int, nu_minus: int
) -> dict[str, Any]:
    """a_cc with its error and the five KB integrals (Å³) for one system's structure document."""
    integrals: dict[str, Any] = {}
    results = {}
    for key, (pair, count_field, same) in _KB_PAIRS.items():
        rdf = structure["rdf"].get(pair)
        if rdf is None:
            raise ValueError(f"structure document has no {pair} g(r)")
        blocks = np.asarray(rdf["g_blocks"]) if "g_blocks" in rdf else None
        res = kb_integral(
            np.asarray(rdf["r"]), np.asarray(rdf["g"]), float(counts[count_field]), volume_A3, same, g_blocks=blocks
        )
        results[key] = res
        integrals[key] = {
            "pair": pair,
            "G_A3": float(res.value),
            "G_err_A3": None if not np.isfinite(res.uncertainty) else float(res.uncertainty),
            "methods": {k: float(v) for k, v in res.values.items()},
        }
    n_formula = counts["n_cations"] / nu_plus
    c_salt = n_formula / AVOGADRO / (volume_A3 * 1e-27)
    a_cc, err = activity_derivative(
        c_salt,
        results["pp"],
        results["mm"],
        results["pm"],
        results["pw"],
        results["mw"],
        nu_plus=nu_plus,
        nu_minus=nu_minus,
    )
    return {
        "molarity": float(c_salt),
        "a_cc": float(a_cc),
        "a_cc_err": None if not np.isfinite(err) else float(err),
        "kb_integrals": integrals,
    }


class ThermoBuilder(Builder):
    """Groups electrolyte summaries by (salt, temperature, model) and writes one ``thermo`` document per group."""

    def __init__(
        self, electrolytes: Store, structure: Store, trajectories: Store, thermo: Store, **kwargs: Any
    ) -> None:
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
            if old and as_datetime(old.get("last_updated")) >= newest and old.get("electrolyte_ids") == ids:
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
                    {"trajectory_id": tid}, properties=["n_cations", "n_anions", "n_waters", "box_length_A"]
                )
                entry: dict[str, Any] = {
                    "electrolyte_id": member["electrolyte_id"],
                    "trajectory_id": tid,
                    "molality": float(member["molality"]),
                }
                try:
                    volume = self._volume(tid, meta)
                    entry.update(system_activity_derivative(structure, meta, volume, salt.nu_cation, salt.nu_anion))
                except (ValueError, KeyError, TypeError) as exc:
                    entry["error"] = f"no a_cc: {exc}"
                systems.append(entry)
        usable = [s for s in systems if "a_cc" in s and np.isfinite(s["a_cc"]) and s["a_cc"] > 0]
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
                "anchor": f"extended Debye–Hückel, ion size {ION_SIZE_A} Å, at {ANCHOR_MOL_L} mol/L",
                "integration": "trapezoid in ln c; Gibbs–Duhem with a Pitzer Debye–Hückel reference",
            },
            "experiment": self._experiment(salt.formula, [s["molality"] for s in usable]),
        }
        molalities = sorted({round(s["molality"], 6) for s in usable})
        if len(molalities) < MIN_CONCENTRATIONS:
            doc.update(
                status="derivative_only",
                series=None,
                reason=f"{len(molalities)} usable concentration(s) < {MIN_CONCENTRATIONS}: a_cc is reported per "
                "system, but γ± and φ need a concentration series and are not extrapolated",
            )
            return doc
        doc.update(status="ok", reason=None, series=self._series(usable, salt, temperature))
        return doc

    def _volume(self, tid: str, meta: dict[str, Any]) -> float:
        # The transport builder records the mean box length of the production run (NVT: the box used).
        length = meta.get("box_length_A")
        if not length:
            raise ValueError(f"trajectory {tid} has no box length")
        return float(length) ** 3

    @staticmethod
    def _series(usable: list[dict[str, Any]], salt: Any, temperature: float) -> dict[str, Any]:
        # Merge replicas at the same molality (mean a_cc, combined error).
        by_m: dict[float, list[dict[str, Any]]] = defaultdict(list)
        for s in usable:
            by_m[round(s["molality"], 6)].append(s)
        m = np.array(sorted(by_m))
        c = np.array([np.mean([s["molarity"] for s in by_m[k]]) for k in m])
        acc = np.array([np.mean([s["a_cc"] for s in by_m[k]]) for k in m])
        acc_err = np.array([np.sqrt(np.sum([(s["a_cc_err"] or 0.0) ** 2 for s in by_m[k]])) / len(by_m[k]) for k in m])
        order = np.argsort(c)
        m, c, acc, acc_err = m[order], c[order], acc[order], acc_err[order]
        zp, zm = salt.cation.charge, salt.anion.charge
        lny = ln_y_from_acc(
            c,
            acc,
            ANCHOR_MOL_L,
            acc_err if np.all(acc_err > 0) else None,
            z_plus=zp,
            z_minus=zm,
            ion_size=ION_SIZE_A,
            T=temperature,
        )
        ln_gamma = ln_gamma_from_ln_y(lny.ln_y, c, m, temperature)
        samples = None
        if lny.samples is not None:
            samples = np.array([ln_gamma_from_ln_y(s, c, m, temperature) for s in lny.samples])
        osm = osmotic_coefficient(m, ln_gamma, samples=samples, z_plus=zp, z_minus=zm, T=temperature)
        gamma = np.exp(ln_gamma)
        return {
            "molality": m.tolist(),
            "molarity": c.tolist(),
            "a_cc": acc.tolist(),
            "a_cc_err": acc_err.tolist(),
            "ln_y": lny.ln_y.tolist(),
            "ln_y_err": lny.ln_y_err.tolist(),
            "gamma": gamma.tolist(),
            "gamma_err": (gamma * lny.ln_y_err).tolist(),
            "phi": osm.phi.tolist(),
            "phi_err": None if osm.phi_err is None else np.asarray(osm.phi_err).tolist(),
            "ln_a_w": osm.ln_a_w.tolist(),
            "a_w": np.exp(osm.ln_a_w).tolist(),
            "water_molar_mass_kg_mol": M_WATER,
        }

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
