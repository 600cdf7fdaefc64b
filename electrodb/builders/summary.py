"""maggma builder: per-trajectory property documents -> one ``electrolytes`` summary per (salt, m, T, model).

Repeat runs of the same electrolyte (replicas, ingested copies with the same model label) are merged: the
inverse-variance weighted mean when every run has an uncertainty, otherwise the plain mean with the standard
error across runs. Experimental values (25 °C reference data) go beside the computed ones as ``exp_*`` fields.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from electrodb.builders.documents import SUMMARY_PROPERTIES, ElectrolyteSummary, Provenance
from electrodb.builders.reference import experimental_values
from electrodb.builders.trajectory import as_datetime
from electrodb.chemistry import parse_salt

__all__ = ["ElectrolyteSummaryBuilder", "merge_values"]


def merge_values(values: list[float | None], errors: list[float | None]) -> tuple[float | None, float | None]:
    """Combine repeat measurements: weighted by 1/σ² when all have σ > 0, else mean ± s/√n (σ None for n = 1)."""
    pairs = [(v, e) for v, e in zip(values, errors, strict=True) if v is not None and np.isfinite(v)]
    if not pairs:
        return None, None
    v = np.array([p[0] for p in pairs], dtype=float)
    e = [p[1] for p in pairs]
    if all(x is not None and x > 0 for x in e):
        w = 1.0 / np.square(np.array(e, dtype=float))
        return float((w * v).sum() / w.sum()), float(1.0 / np.sqrt(w.sum()))
    if len(v) == 1:
        return float(v[0]), None
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def _get(doc: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


_EXTRACT = {
    "D_cation": ("transport", ("diffusion", "cation", "D"), ("diffusion", "cation", "D_err")),
    "D_anion": ("transport", ("diffusion", "anion", "D"), ("diffusion", "anion", "D_err")),
    "D_water": ("transport", ("diffusion", "water", "D"), ("diffusion", "water", "D_err")),
    "r_cation_O": ("structure", ("shells", "cation-O_w", "r_peak"), None),
    "r_anion_O": ("structure", ("shells", "anion-O_w", "r_peak"), None),
    "cn_cation_O": ("structure", ("shells", "cation-O_w", "cn"), ("shells", "cation-O_w", "cn_err")),
    "cn_anion_O": ("structure", ("shells", "anion-O_w", "cn"), ("shells", "anion-O_w", "cn_err")),
    "cn_cation_anion": ("structure", ("shells", "cation-anion", "cn"), ("shells", "cation-anion", "cn_err")),
    "cip_fraction_cation": ("pairing", ("pairing", "cation", "cip"), ("pairing", "cation_err", "cip")),
    "agg_fraction_cation": ("pairing", ("pairing", "cation", "agg"), ("pairing", "cation_err", "agg")),
    "free_fraction_cation": ("pairing", ("pairing", "cation", "free"), ("pairing", "cation_err", "free")),
    "tau_cation_water": ("kinetics", ("residence", "cation", "tau_ps"), ("residence", "cation", "tau_err_ps")),
    "tau_anion_water": ("kinetics", ("residence", "anion", "tau_ps"), ("residence", "anion", "tau_err_ps")),
    "density": ("trajectory", ("density_kg_m3",), ("density_err_kg_m3",)),
}
assert set(_EXTRACT) == set(SUMMARY_PROPERTIES)


class ElectrolyteSummaryBuilder(Builder):
    """Group property documents by ``electrolyte_id`` and write merged summaries (incrementally)."""

    def __init__(
        self,
        structure: Store,
        transport: Store,
        pairing: Store,
        kinetics: Store,
        trajectories: Store,
        electrolytes: Store,
        **kwargs: Any,
    ) -> None:
        self.sources_by_name = {
            "structure": structure,
            "transport": transport,
            "pairing": pairing,
            "kinetics": kinetics,
        }
        self.trajectories = trajectories
        self.electrolytes = electrolytes
        super().__init__(
            sources=[structure, transport, pairing, kinetics, trajectories],
            targets=[electrolytes],
            chunk_size=50,
            **kwargs,
        )

    def get_items(self) -> Iterator[str]:
        newest: dict[str, datetime] = {}
        for store in self.sources_by_name.values():
            for d in store.query({}, properties=["electrolyte_id", "last_updated"]):
                t = as_datetime(d.get("last_updated"))
                if d["electrolyte_id"] not in newest or t > newest[d["electrolyte_id"]]:
                    newest[d["electrolyte_id"]] = t
        built = {
            d["electrolyte_id"]: as_datetime(d.get("last_updated"))
            for d in self.electrolytes.query({}, properties=["electrolyte_id", "last_updated"])
        }
        for eid, t in newest.items():
            if eid not in built or built[eid] < t:
                yield eid

    def process_item(self, eid: str) -> dict[str, Any]:
        docs = {name: list(store.query({"electrolyte_id": eid})) for name, store in self.sources_by_name.items()}
        tids = sorted({d["trajectory_id"] for group in docs.values() for d in group})
        trajectories = {
            d["trajectory_id"]: d
            for d in self.trajectories.query(
                {"trajectory_id": {"$in": tids}},
                properties=[
                    "trajectory_id",
                    "density_kg_m3",
                    "density_err_kg_m3",
                    "n_atoms",
                    "duration_ps",
                    "campaign_ids",
                    "model",
                    "md",
                    "code_version",
                ],
            )
        }
        by_tid: dict[str, dict[str, dict]] = defaultdict(dict)
        for name, group in docs.items():
            for d in group:
                by_tid[d["trajectory_id"]][name] = d
        for tid, t in trajectories.items():
            by_tid[tid]["trajectory"] = t
        first = next(d for group in docs.values() for d in group)
        salt = parse_salt(first["salt"])
        flat: dict[str, Any] = {}
        for prop, (source, value_path, err_path) in _EXTRACT.items():
            values = [_get(by_tid[t].get(source), *value_path) for t in tids]
            errors = [_get(by_tid[t].get(source), *err_path) if err_path else None for t in tids]
            flat[prop], flat[f"{prop}_err"] = merge_values(values, errors)
        summary = ElectrolyteSummary(
            electrolyte_id=eid,
            salt=first["salt"],
            cation=first["cation"],
            anion=first["anion"],
            nu_cation=salt.nu_cation,
            nu_anion=salt.nu_anion,
            cation_charge=salt.cation.charge,
            anion_charge=salt.anion.charge,
            cation_radius_A=salt.cation.radius_A,
            anion_radius_A=salt.anion.radius_A,
            molality=first["molality"],
            temperature=first["temperature"],
            model_id=first["model_id"],
            campaign_ids=sorted({c for t in trajectories.values() for c in t.get("campaign_ids", [])}),
            trajectory_ids=tids,
            n_runs=len(tids),
            total_ps=float(sum(t.get("duration_ps", 0.0) for t in trajectories.values())),
            n_atoms=int(next(iter(trajectories.values()), {}).get("n_atoms", 0)),
            provenance=Provenance(
                trajectory_ids=tids,
                model_id=first["model_id"],
                model=next(iter(trajectories.values()), {}).get("model", {}),
                md=next(iter(trajectories.values()), {}).get("md", {}),
                analysis=first["provenance"].get("analysis", {}),
                builder="summary",
            ),
        )
        return {
            **summary.model_dump(mode="json"),
            **flat,
            **experimental_values(
                first["salt"], first["cation"], first["anion"], first["molality"], first["temperature"]
            ),
        }

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        if items:
            self.electrolytes.update([{**item, "last_updated": now} for item in items], key="electrolyte_id")
