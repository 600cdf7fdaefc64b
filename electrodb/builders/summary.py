"""maggma builder: per-trajectory property documents -> one ``electrolytes`` summary per (salt, m, T, model).

Repeat runs of the same electrolyte (replicas, ingested copies with the same model label) are merged: the
inverse-variance weighted mean when every run has an uncertainty, otherwise the plain mean with the standard
error across runs. Experimental values (25 °C reference data) go beside the computed ones as ``exp_*`` fields.

Statuses (:mod:`electrodb.analysis.convergence`) are merged by :func:`merge_property`: converged runs when there
are any; else runs whose value is an ``input`` (η from a correlation, a fixed density: the same input each time,
so its error is not divided down); else every run, with the least favourable status. Whatever the analysis
said, a run or a merged value whose error is exactly zero is not ``converged``, and an ``insufficient`` value is
written as None (with its error). ``P_n_eff`` and ``P_t_equil_ps`` are read from each merged run's verdict entry
(``n_eff``, ``t_equil_ps``). With ``audits`` and ``committees``, the summary also carries the model-trust verdict of
its runs' committee audits and, where a refined committee's model ran the same electrolyte, ``superseded_by``
(:mod:`electrodb.builders.trust`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from electrodb.analysis.convergence import STATUSES, Verdict, worst
from electrodb.analysis.viscosity import SOURCE_GREEN_KUBO, SOURCE_LALIBERTE, SOURCE_WATER
from electrodb.builders.reference import experimental_values
from electrodb.builders.trust import TrustLookup
from electrodb.documents.properties import ElectrolyteSummary, Provenance
from electrodb.documents.registry import PROPERTIES
from electrodb.systems.chemistry import parse_salt
from electrodb.utils.provenance import as_datetime

__all__ = ["ZERO_ERROR_REASON", "ElectrolyteSummaryBuilder", "merge_property", "merge_values"]


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


_LEGACY_REASON = "stored by an older ElectroDB without a convergence status ({}); rebuild with --rebuild"


def _verdict(entry: Any) -> Verdict:
    """The Verdict recorded in a property entry; anything else (legacy or missing) is not a result."""
    if not isinstance(entry, dict):
        return Verdict("insufficient", "property computed", "not computed for this run")
    status = entry.get("status")
    if status in STATUSES:
        return Verdict(status, str(entry.get("criterion") or ""), str(entry.get("reason") or ""))
    return Verdict("unconverged", "documented convergence criteria", _LEGACY_REASON.format(status or "no status"))


def _trajectory_entries(traj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Verdicts of the run-level quantities (temperature, density) as property-style entries."""
    md = traj.get("md") or {}
    temp_status = traj.get("temperature_status")
    if temp_status in STATUSES:
        temperature = {
            "status": temp_status,
            "criterion": traj.get("temperature_criterion") or "",
            "reason": traj.get("temperature_reason") or "",
        }
    elif traj.get("mean_temperature_K") is None:
        temperature = {"status": "insufficient", "criterion": "mean run temperature", "reason": "not recorded"}
    else:
        temperature = {"status": None}
    if md.get("npt") is False or (traj.get("source") == "ingest" and not md.get("npt")):
        density = {
            "status": "input",
            "criterion": "computed in NPT",
            "reason": "fixed input density (no NPT run): not computed, see density_input",
        }
    elif traj.get("density_converged") is False:
        density = {
            "status": "unconverged",
            "criterion": "NPT block-mean density settled",
            "reason": "NPT density did not settle within npt_max_ps",
        }
    else:
        density = {"status": "converged", "criterion": "NPT block-mean density settled", "reason": ""}
    return {"temperature": temperature, "density": density}


def _at_wrong_temperature(traj: dict[str, Any] | None) -> str | None:
    """Reason why a run's properties are not results at its labelled temperature (None when they are)."""
    # "insufficient" (a file without velocities) cannot be checked: the label is the user's word, shown as such
    # in T_mean; only a measured miss makes the run's properties not results.
    if not traj or traj.get("temperature_status") != "unconverged":
        return None
    return f"run not at its labelled temperature: {traj.get('temperature_reason') or traj['temperature_status']}"


_ETA_INPUTS = {
    SOURCE_LALIBERTE: "taken from Laliberté's correlation for the salt (experimental η), not computed from the run",
    "user": "set by the user (AnalysisSettings.viscosity_Pa_s), not computed from the run",
    SOURCE_WATER: "experimental viscosity of pure water (Vogel equation), not computed from the run",
}


def _viscosity_entry(transport: dict[str, Any] | None, molality: float) -> dict[str, Any]:
    """Verdict of the Yeh–Hummer viscosity: a result only when computed from the run (Green–Kubo).

    A correlation (Laliberté), a user's value or pure water's η in pure water is an ``input``; pure water's η for
    a salt solution is the wrong input (it over-corrects D) and ``unconverged``; an η without a recorded source
    (an older ElectroDB) is ``unconverged``.
    """
    entry = _get(transport, "diffusion", "water") or {}
    source = str(entry.get("viscosity_source") or "")
    criterion = "viscosity of the solution computed from the run (Green–Kubo); a correlation or a set value is an input"
    if entry.get("viscosity_Pa_s") is None:
        return {"status": "insufficient", "criterion": criterion, "reason": "no viscosity recorded"}
    if source == SOURCE_GREEN_KUBO:
        return {"status": "converged", "criterion": criterion, "reason": ""}
    if not source:
        return {"status": "unconverged", "criterion": criterion, "reason": "viscosity source not recorded"}
    if source == SOURCE_WATER and molality > 0:
        reason = f"pure-water viscosity used for a salt solution ({source}): over-corrects D"
        return {"status": "unconverged", "criterion": criterion, "reason": reason}
    reason = _ETA_INPUTS.get(source, f"taken from {source}, not computed from the run")
    return {"status": "input", "criterion": criterion, "reason": reason}


#: Why a value whose standard error is exactly zero is not converged.
ZERO_ERROR_REASON = (
    "standard error exactly zero: the samples never varied (one frozen configuration, identical runs or too few "
    "independent samples), so there is no error bar to bet on"
)


def _zero_error_guard(verdict: Verdict, error: float | None) -> Verdict:
    """``verdict``, made ``unconverged`` when it is ``converged`` with an error of exactly zero."""
    if verdict.converged and error is not None and error == 0.0:
        return Verdict("unconverged", verdict.criterion, ZERO_ERROR_REASON)
    return verdict


def _merge_runs(
    values: list[float | None], errors: list[float | None], verdicts: list[Verdict]
) -> tuple[float | None, float | None, Verdict, list[int]]:
    """:func:`merge_property`, with the indices of the runs merged instead of their number."""
    verdicts = [_zero_error_guard(v, e) for v, e in zip(verdicts, errors, strict=True)]
    has = [i for i, v in enumerate(values) if v is not None]
    good = [i for i in has if verdicts[i].converged]
    given = [i for i in has if verdicts[i].status == "input"]
    if good:
        use = good
        value, error = merge_values([values[i] for i in use], [errors[i] for i in use])
        verdict = Verdict("converged", verdicts[good[0]].criterion)
    elif given:  # the same input in every run: its error is not divided down by the number of runs
        use = given
        value = float(np.mean([values[i] for i in use]))
        errs = [errors[i] for i in use if errors[i] is not None]
        error = float(max(errs)) if errs else None
        verdict = worst(*(verdicts[i] for i in use))
    else:
        use = has
        value, error = merge_values([values[i] for i in use], [errors[i] for i in use])
        verdict = worst(*verdicts) if verdicts else Verdict("insufficient", "property computed", "no run")
    if value is None and verdict.status != "insufficient":
        verdict = Verdict("insufficient", verdict.criterion, verdict.reason or "no value computed")
    if verdict.status == "insufficient":  # not enough data: no number, whatever a run computed
        return None, None, verdict, []
    return value, error, _zero_error_guard(verdict, error), use


def merge_property(
    values: list[float | None], errors: list[float | None], verdicts: list[Verdict]
) -> tuple[float | None, float | None, Verdict, int]:
    """Merge one property over runs: converged runs only when there are any, else inputs, else all runs.

    Parameters
    ----------
    values, errors
        Per run (None: not computed).
    verdicts
        Per run.

    Returns
    -------
    tuple
        ``(value, error, verdict, n_runs_used)``. The merged verdict is ``converged`` when at least one run
        converged (only those are merged); else ``input`` when a run's value is an input (only those are merged,
        the largest error kept); otherwise the least favourable verdict of the runs, with their reasons. A run
        or a merged value with an error of exactly zero is not converged (:data:`ZERO_ERROR_REASON`); an
        ``insufficient`` verdict comes with no value and no error.
    """
    value, error, verdict, use = _merge_runs(values, errors, verdicts)
    return value, error, verdict, len(use)


def _sampling(entries: list[Any], use: list[int]) -> tuple[float | None, float | None]:
    """``(n_eff summed, largest t_equil_ps)`` over the merged runs' verdict entries; None unless all have it."""

    def numbers(key: str) -> list[float] | None:
        found = [entries[i].get(key) if isinstance(entries[i], dict) else None for i in use]
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in found)
        return [float(x) for x in found] if found and ok else None

    n_eff, t_equil = numbers("n_eff"), numbers("t_equil_ps")
    return (float(sum(n_eff)) if n_eff else None), (max(t_equil) if t_equil else None)


def _needs_ps(entries: list[Any], tids: list[str], by_tid: dict[str, dict[str, dict]]) -> float | None:
    """More production (ps) the least-short run needs for the property to converge: ``(run_factor − 1) × its
    production`` (:mod:`electrodb.flows.segments`); None when no run says (or none can get there by running)."""
    out = []
    for entry, tid in zip(entries, tids, strict=True):
        factor = entry.get("run_factor") if isinstance(entry, dict) else None
        if isinstance(factor, (int, float)) and not isinstance(factor, bool) and np.isfinite(factor):
            ps = float((by_tid[tid].get("trajectory") or {}).get("duration_ps") or 0.0)
            out.append(max(float(factor) - 1.0, 0.0) * ps)
    return min(out) if out else None


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
        rebuild: bool = False,
        models: Store | None = None,
        audits: Store | None = None,
        committees: Store | None = None,
        **kwargs: Any,
    ) -> None:
        """``rebuild`` recomputes every summary (each is upserted in place: none is removed first); ``models``
        (the ``models`` collection) gives summaries the registered name of their model (:meth:`model_name`);
        ``audits`` and ``committees`` give them the model-trust verdict and ``superseded_by``."""
        self.rebuild = rebuild
        self.models = models
        self.trust = TrustLookup(audits, committees, trajectories, structure) if audits is not None else None
        self._names: dict[str, str] | None = None
        self.sources_by_name = {
            "structure": structure,
            "transport": transport,
            "pairing": pairing,
            "kinetics": kinetics,
        }
        self.trajectories = trajectories
        self.electrolytes = electrolytes
        super().__init__(
            sources=[
                structure,
                transport,
                pairing,
                kinetics,
                trajectories,
                *(store for store in (models, audits, committees) if store is not None),
            ],
            targets=[electrolytes],
            chunk_size=50,
            **kwargs,
        )

    def model_name(self, model_id: str, identity: dict[str, Any] | None) -> str | None:
        """Readable name of a model: its name in ``models`` (what ``GET /models`` shows), else the name in the run's
        model identity unless that is only the hash (``<sha256[:16]>.model``, a file written from the blob store).

        Parameters
        ----------
        model_id
            Id of the model (``sha256:<hex>`` or ``name:...``).
        identity
            The trajectory's ``model`` (its :class:`~electrodb.models.loaded.ModelIdentity`), if any.
        """
        if self._names is None:
            found = self.models.query({}, properties=["model_id", "name"]) if self.models is not None else []
            self._names = {d["model_id"]: str(d["name"]) for d in found if d.get("model_id") and d.get("name")}
        if model_id in self._names:
            return self._names[model_id]
        name = (identity or {}).get("name")
        if not name:
            return None
        digest = model_id.removeprefix("sha256:")
        stem = str(name).rsplit(".", 1)[0]
        return None if model_id.startswith("sha256:") and len(stem) >= 8 and digest.startswith(stem) else str(name)

    def get_items(self) -> Iterator[str]:
        """Electrolytes whose member documents are newer than their summary, whose set of member trajectories
        changed (a replica added, or removed because it turned unstable), that have no members left, or whose
        model's registered name is not the summary's ``model_name`` (a model registered or renamed since)."""
        self._names = None
        newest: dict[str, datetime] = {}
        members: dict[str, set[str]] = defaultdict(set)
        for store in self.sources_by_name.values():
            for d in store.query({}, properties=["electrolyte_id", "trajectory_id", "last_updated"]):
                t = as_datetime(d.get("last_updated"))
                eid = d["electrolyte_id"]
                members[eid].add(d["trajectory_id"])
                if eid not in newest or t > newest[eid]:
                    newest[eid] = t
        built = {
            d["electrolyte_id"]: d
            for d in self.electrolytes.query(
                {}, properties=["electrolyte_id", "last_updated", "trajectory_ids", "model_id", "model_name"]
            )
        }
        if self.trust is not None:
            newest = self.trust.stamps(newest, members)
        for eid, t in newest.items():
            old = built.get(eid)
            if (
                self.rebuild
                or old is None
                or as_datetime(old.get("last_updated")) < t
                or set(old.get("trajectory_ids") or []) != members[eid]
                or self.model_name(str(old.get("model_id") or ""), None) not in (None, old.get("model_name"))
            ):
                yield eid
        for eid in built.keys() - newest.keys():  # every member gone: the summary must go too
            yield eid

    def process_item(self, eid: str) -> dict[str, Any]:
        docs = {name: list(store.query({"electrolyte_id": eid})) for name, store in self.sources_by_name.items()}
        tids = sorted({d["trajectory_id"] for group in docs.values() for d in group})
        if not tids:
            return {"electrolyte_id": eid, "_remove": True}
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
                    "source",
                    "mean_temperature_K",
                    "temperature_err_K",
                    "temperature_status",
                    "temperature_criterion",
                    "temperature_reason",
                    "density_converged",
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
        flat = self._flatten(tids, by_tid)
        first_traj = next(iter(trajectories.values()), {})
        density_input = None
        if flat["density_status"] == "input" and flat["density"] is not None:
            # A fixed density is an input, not a result: it stays in density_input (density None, as it always
            # was) and is never compared with experiment as if computed.
            density_input, flat["density"], flat["density_err"] = flat["density"], None, None
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
            n_atoms=int(first_traj.get("n_atoms", 0)),
            model_name=self.model_name(first["model_id"], first_traj.get("model")),
            density_source="input" if density_input is not None else ("npt" if flat["density"] is not None else None),
            density_input=density_input,
            eta_source=_get(by_tid[tids[0]].get("transport"), "diffusion", "water", "viscosity_source"),
            targets=first["provenance"].get("analysis", {}).get("targets", {}),
            provenance=Provenance(
                trajectory_ids=tids,
                model_id=first["model_id"],
                model=next(iter(trajectories.values()), {}).get("model", {}),
                md=next(iter(trajectories.values()), {}).get("md", {}),
                analysis=first["provenance"].get("analysis", {}),
                builder="summary",
            ),
        )
        experiment = experimental_values(
            first["salt"], first["cation"], first["anion"], first["molality"], first["temperature"]
        )
        if density_input is not None:
            experiment = {k: v for k, v in experiment.items() if not k.startswith("exp_density")}
        if self.trust is not None:
            trust = self.trust.fields(summary)
            # every value of the summary names the committee that judged its model and the refine round
            provenance = summary.provenance.model_copy(
                update={"committee_id": trust.get("committee_id"), "refine_round": trust.get("refine_round")}
            )
            summary = summary.model_copy(update={**trust, "provenance": provenance})
        return {**summary.model_dump(mode="json"), **flat, **experiment}

    @staticmethod
    def _flatten(tids: list[str], by_tid: dict[str, dict[str, dict]]) -> dict[str, Any]:
        """``P``, ``P_err``, ``P_status``, ``P_criterion``, ``P_reason``, ``P_n_runs``, ``P_n_eff``,
        ``P_t_equil_ps`` and ``P_needs_ps`` for every headline property."""
        flat: dict[str, Any] = {}
        for prop, where in PROPERTIES.items():
            values, errors, verdicts, entries = [], [], [], []
            for tid in tids:
                docs = by_tid[tid]
                traj = docs.get("trajectory") or {}
                doc = docs.get(where.source) if where.source != "trajectory" else traj
                value = _get(doc, *where.value)
                values.append(None if value is None else float(value) * where.scale)
                err = _get(doc, *where.error) if where.error else None
                errors.append(None if err is None else float(err) * where.scale)
                if where.source == "trajectory":
                    entry = _trajectory_entries(traj)[where.verdict[0]]
                elif prop == "eta":
                    entry = _viscosity_entry(doc, float(_get(doc, "molality") or traj.get("molality") or 0.0))
                else:
                    entry = _get(doc, *where.verdict)
                entries.append(entry)
                verdict = _verdict(entry)
                wrong_t = _at_wrong_temperature(traj) if prop != "T_mean" else None
                if wrong_t and verdict.converged:
                    verdict = Verdict("unconverged", verdict.criterion, wrong_t)
                verdicts.append(verdict)
            value, error, verdict, use = _merge_runs(values, errors, verdicts)
            n_eff, t_equil = _sampling(entries, use)
            needs = 0.0 if verdict.status in ("converged", "input") else _needs_ps(entries, tids, by_tid)
            flat.update(
                {
                    prop: value,
                    f"{prop}_err": error,
                    f"{prop}_status": verdict.status,
                    f"{prop}_criterion": verdict.criterion,
                    f"{prop}_reason": verdict.reason,
                    f"{prop}_n_runs": len(use),
                    f"{prop}_n_eff": n_eff,
                    f"{prop}_t_equil_ps": t_equil,
                    f"{prop}_needs_ps": needs,
                }
            )
        return flat

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        gone = [item["electrolyte_id"] for item in items if item.get("_remove")]
        if gone:
            self.electrolytes.remove_docs({"electrolyte_id": {"$in": gone}})
        keep = [{**item, "last_updated": now} for item in items if not item.get("_remove")]
        if keep:
            self.electrolytes.update(keep, key="electrolyte_id")
