"""``electrodb demo``: the whole pipeline on CPU in minutes, with a MACE model the demo trains itself.

No MACE weights can be downloaded here, so the demo makes its own model honestly: it samples configurations of
small NaCl/LiCl boxes, labels them with CHGNet-r2SCAN (weights ship with the ``chgnet`` wheel), trains a small
MACE with ``mace_run_train`` and caches it in the database (a second run reuses it). Then it runs the demo
campaign with that model, builds every property and prints them beside experiment. A demo model is not a
production potential: real campaigns pass a fine-tuned MACE file (``--model PATH``) and use a GPU.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from electrodb.builders import run_builders
from electrodb.cli.demo_committee import ensure_demo_committee
from electrodb.cli.demo_model import ensure_demo_model
from electrodb.cli.plots import plot_activity, plot_msd, plot_rdf
from electrodb.cli.reporting import failure_lines, format_needs, plan_table, run_with_progress
from electrodb.flows.audit import run_audits
from electrodb.io.export import export_table
from electrodb.settings import get_settings
from electrodb.store.stores import ElectroDBStores, get_stores
from electrodb.systems.campaign import Campaign

__all__ = [
    "demo_campaign",
    "format_value",
    "needs_text",
    "property_table",
    "run_demo",
    "thermo_table",
    "trust_text",
]


def demo_campaign(model: str) -> Campaign:
    """The built-in demo campaign with ``model`` as its model reference."""
    text = resources.files("electrodb.data").joinpath("demo_campaign.yaml").read_text()
    data = yaml.safe_load(text)
    data["model"] = model
    return Campaign.model_validate(data)


#: (summary property, column header with unit, digits) of the demo table.
_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("D_cation", "D+", 2),
    ("D_anion", "D-", 2),
    ("D_water", "D(H2O)", 2),
    ("r_cation_O", "r(+–O)", 2),
    ("cn_cation_O", "CN(+–O)", 1),
    ("r_anion_O", "r(-–O)", 2),
    ("cn_anion_O", "CN(-–O)", 1),
    ("r_water_O", "r(O–O)", 2),
    ("cn_water_O", "CN(O–O)", 1),
    ("cip_fraction_cation", "CIP", 2),
    ("sigma", "σ", 2),
    ("t_plus", "t+", 2),
)
#: Units of the demo table's columns, in its caption (headers stay narrow enough for 160 columns).
_UNITS = (
    "D in 1e-9 m²/s, r in Å, σ in S/m; CIP: fraction of cations in contact ion pairs; T: mean (target); "
    "trust: committee audit of the model (extrap. x%: x% of audited frames beyond the training data)"
)


def needs_text(doc: dict, key: str, ps_per_hour: float | None) -> str:
    """``"needs ≈ 3.2 ps more (≈ 4 min on this machine)"`` from ``P_needs_ps`` and the run's measured speed;
    ``""`` when not estimated (or when running longer cannot make it converge, which its reason says)."""
    needs = doc.get(f"{key}_needs_ps")
    if needs is None:
        return ""
    return "needs " + format_needs(needs, ps_per_hour, digits=2, more=" more", where=" on this machine")


def trust_text(doc: dict) -> tuple[str, str | None]:
    """The demo table's model-trust cell and, when the model is not trusted, the footnote's reason.

    ``("ok", None)`` when trusted (a short cell: the column is narrow); ``("extrap. 12%", reason)`` (the
    percentage of audited frames whose committee force disagreement is above threshold); ``("insuff.", reason)``
    (too few frames audited); ``("—", None)`` for a summary no committee audited (or one built before committees
    existed).
    """
    status = doc.get("model_trust") or "unaudited"
    reason = doc.get("model_trust_reason") or ""
    frac, p95, n = doc.get("frac_flagged"), doc.get("sigma_F_max_p95"), doc.get("n_frames_audited") or 0
    numbers = []
    if frac is not None and n:
        numbers.append(f"{100 * frac:.0f}% of {n} audited frames above the σ_F threshold")
    if p95 is not None:
        numbers.append(f"σ_F p95 {p95:.2f} eV/Å")
    detail = f"{reason} ({'; '.join(numbers)})" if reason and numbers else reason or "; ".join(numbers)
    if status == "trusted":
        return "ok", None
    if status == "extrapolating":
        percent = f" {100 * frac:.0f}%" if frac is not None else ""
        return f"extrap.{percent}", "model extrapolating: " + (detail or "committee members disagree")
    if status == "insufficient":
        return "insuff.", "too few frames audited: " + (detail or "no verdict")
    return "—", None


def format_value(doc: dict, key: str, digits: int = 2) -> tuple[str, str | None]:
    """``("1.23 ± 0.04 (exp 1.33)", None)`` for a converged value, ``("n.c.", reason)`` otherwise.

    A value whose own status is not ``converged`` is never printed as a plain number: the cell says ``n.c.`` (not
    converged) or ``n/a`` (insufficient data), or, for an ``input`` (taken from a correlation or an input, not
    computed), the number marked ``input``; the reason (or where the input came from) goes to a footnote.
    """
    value, err, exp = doc.get(key), doc.get(f"{key}_err"), doc.get(f"exp_{key}")
    status = doc.get(f"{key}_status")
    exp_text = f" (exp {exp:.{digits}f})" if exp is not None else ""
    # spaces around ± let a narrow column wrap the cell instead of folding a number in two
    number = None if value is None else f"{value:.{digits}f}" + (f" ± {err:.{digits}f}" if err else "")
    if status == "input":  # the number (if the summary holds it: a fixed density is in density_input) as an input
        text = "input" if number is None else f"{number} input"
        return text + exp_text, doc.get(f"{key}_reason") or "an input, not computed"
    if status != "converged" or number is None:
        label = "n/a" if status == "insufficient" or value is None else "n.c."
        return label + exp_text, doc.get(f"{key}_reason") or f"status {status}"
    return number + exp_text, None


def property_table(stores: ElectroDBStores, campaign: str) -> tuple[Table, list[str]]:
    """Computed properties of a campaign's electrolytes beside experiment, and the not-converged footnotes.

    Returns the table and one footnote line per value that is not a result (``[k] salt m, property: reason``).
    """
    table = Table(
        title="ElectroDB demo: converged values ± standard error (experiment, 25 °C, in brackets)", caption=_UNITS
    )
    table.add_column("salt", justify="left")
    table.add_column("m mol/kg", justify="right")
    table.add_column("run ps", justify="right")
    table.add_column("T K", justify="right")
    for _, header, _ in _COLUMNS:
        table.add_column(header, justify="right", overflow="fold")  # a long value folds, never cut with "…"
    table.add_column("trust", justify="left", overflow="fold")  # the model-trust verdict beside the statuses
    notes: list[str] = []

    def cell(doc: dict, key: str, digits: int, header: str, speed: float | None) -> str:
        text, reason = format_value(doc, key, digits)
        if reason is None:
            return text
        more = needs_text(doc, key, speed) if doc.get(f"{key}_status") in ("unconverged", "insufficient") else ""
        prefix = f"{more}: " if more else ""
        notes.append(f"[{len(notes) + 1}] {doc['salt']} {doc['molality']:.2f} m, {header}: {prefix}{reason}")
        return f"{text} [{len(notes)}]"

    def trust(doc: dict) -> str:
        text, reason = trust_text(doc)
        if reason is None:
            return text
        notes.append(f"[{len(notes) + 1}] {doc['salt']} {doc['molality']:.2f} m, trust: {reason}")
        return f"{text} [{len(notes)}]"

    # the default answer, as the API and the export give it: results a refined committee superseded are left out
    query = {"campaign_ids": campaign, "superseded_by": None}
    superseded = stores.electrolytes.count({"campaign_ids": campaign, "superseded_by": {"$ne": None}})
    if superseded:
        table.caption = f"{_UNITS}; {superseded} superseded result(s) not shown (export --include-superseded)"
    for doc in stores.electrolytes.query(query, sort={"salt": 1, "molality": 1}):
        speed = _ps_per_hour(stores, doc.get("trajectory_ids") or [])
        t_mean = doc.get("T_mean")
        t_text = "—" if t_mean is None else f"{t_mean:.0f}"
        if doc.get("T_mean_status") not in (None, "converged"):
            notes.append(f"[{len(notes) + 1}] {doc['salt']} {doc['molality']:.2f} m, T: {doc.get('T_mean_reason')}")
            t_text += f" [{len(notes)}]"
        table.add_row(
            doc["salt"],
            f"{doc['molality']:.2f}",
            f"{doc['total_ps']:.2f}",
            f"{t_text} ({doc['temperature']:.0f})",
            *(cell(doc, key, digits, header, speed) for key, header, digits in _COLUMNS),
            trust(doc),
        )
    return table, notes


def _ps_per_hour(stores: ElectroDBStores, trajectory_ids: list[str]) -> float | None:
    """Production speed of these runs on this machine (ps per wall hour), or None."""
    docs = list(
        stores.trajectories.query({"trajectory_id": {"$in": trajectory_ids}}, properties=["duration_ps", "wall_time_s"])
    )
    ps = sum(float(d.get("duration_ps") or 0.0) for d in docs)
    wall = sum(float(d.get("wall_time_s") or 0.0) for d in docs)
    return ps / (wall / 3600.0) if ps > 0 and wall > 0 else None


def thermo_table(stores: ElectroDBStores, model_id: str) -> list[Table | str]:
    """γ± and φ per concentration series beside experiment, or why they are not results."""
    out: list[Table | str] = []
    for doc in stores.thermo.query({"model_id": model_id}, sort={"salt": 1}):
        per_system = "; ".join(
            f"m={s['molality']:.2f}: "
            + (
                s.get("error")
                or f"a_cc={s['a_cc']:.3f}"
                + ("" if s.get("a_cc_status") == "converged" else f" (n.c.: {s.get('a_cc_reason') or 'no status'})")
            )
            for s in doc.get("systems", [])
        )
        series = doc.get("series")
        if doc.get("status") != "converged" or not series:
            tables = doc.get("experiment", {}).get("tables", {})
            gamma = tables.get("gamma", {})
            exp = ", ".join(
                f"γ±({m:g})={v:.3f}"
                for m, v in zip(gamma.get("molality", [])[:5], gamma.get("value", [])[:5], strict=False)
            )
            out.append(
                f"{doc['salt']}: activity coefficients are not results ({doc.get('status')}): {doc.get('reason')}. "
                f"Per system: {per_system}." + (f" Experiment (Hamer & Wu): {exp}" if exp else "")
            )
            continue
        pitzer = doc.get("experiment", {}).get("pitzer_at_series", {})
        exp_gamma = dict(zip(pitzer.get("molality", []), pitzer.get("gamma", []), strict=False))
        exp_phi = dict(zip(pitzer.get("molality", []), pitzer.get("phi", []), strict=False))
        table = Table(title=f"{doc['salt']} {doc['temperature']:.0f} K: Kirkwood–Buff activity (exp: Pitzer fit)")
        for col in ("m mol/kg", "a_cc", "γ±", "γ± exp", "φ", "φ exp"):
            table.add_column(col, justify="right")
        for k, m in enumerate(series["molality"]):
            phi_err = series["phi_err"][k] if series.get("phi_err") else None
            table.add_row(
                f"{m:.2f}",
                f"{series['a_cc'][k]:.3f}±{series['a_cc_err'][k]:.3f}",
                f"{series['gamma'][k]:.3f}±{series['gamma_err'][k]:.3f}",
                f"{exp_gamma[m]:.3f}" if m in exp_gamma else "—",
                f"{series['phi'][k]:.3f}" + (f"±{phi_err:.3f}" if phi_err else ""),
                f"{exp_phi[m]:.3f}" if m in exp_phi else "—",
            )
        out.append(table)
    return out


def run_demo(console: Console, retrain: bool = False, output_dir: Path = Path("demo-output")) -> None:
    """Run the demo campaign with the demo model, build properties, print them and write plots and an export."""

    started = time.perf_counter()
    settings = get_settings()
    console.print(f"database: {settings.describe()}")
    with get_stores() as stores:
        console.rule("1/4 demo model")
        model_path, model_doc = ensure_demo_model(stores, console.log, retrain=retrain)
        committee = ensure_demo_committee(stores, console.log)
        campaign = demo_campaign(str(model_path))
        if campaign.audit is not None and (committee is None or model_doc["model_id"] not in committee.member_ids):
            why = "none is shipped" if committee is None else "the demo committee lacks this (retrained) model"
            console.log(f"no committee audit: {why}")
            campaign = campaign.model_copy(update={"audit": None})
        console.rule("2/4 plan")
        console.print(plan_table(campaign))
        console.rule("3/4 NNP molecular dynamics (equilibration + production per system)")
        summary = run_with_progress(campaign, stores, console)
        console.print(
            f"completed {len(summary.completed)}, already done {len(summary.skipped)}, "
            f"unstable {len(summary.unstable)}, failed {len(summary.failed)} of {summary.total}"
        )
        for line in failure_lines(summary):
            console.print(line, soft_wrap=True, markup=False)
        if campaign.audit is not None:
            audit_started = time.perf_counter()
            verdicts = run_audits(campaign, stores, campaign.systems())
            counts = ", ".join(f"{list(verdicts.values()).count(v)} {v}" for v in dict.fromkeys(verdicts.values()))
            console.log(
                f"committee audit ({campaign.audit.committee}, every {campaign.audit.every_frames}th frame): "
                f"{counts or 'nothing to audit'} in {time.perf_counter() - audit_started:.0f} s"
            )
        console.rule("4/4 build properties")
        counts = run_builders(stores, log=console.log)
        console.log(f"builders processed {counts}")
        table, notes = property_table(stores, campaign.name)
        console.print(table)
        if notes:
            console.print(
                "n.c. = computed but not converged, n/a = not enough data, input = taken from a correlation or an "
                "input, not computed; not results (trust: ok = trusted, extrap. = the model left its training data, "
                "insuff. = too few frames audited, — = no committee audit):",
                soft_wrap=True,
            )
            for line in notes:
                console.print(line, soft_wrap=True, markup=False)
        summaries = list(stores.electrolytes.query({"campaign_ids": campaign.name}))
        if any(d.get("density_source") == "input" for d in summaries):
            console.print(
                "density: a fixed input (the demo model has no stresses for NPT), so it is not a result and is "
                "not compared with experiment",
                soft_wrap=True,
            )
        eta_sources = sorted({str(d.get("eta_source")) for d in summaries if d.get("eta_status") == "input"})
        if eta_sources:
            console.print(
                f"η for the Yeh–Hummer correction of D: an input ({', '.join(eta_sources)}), not computed from the "
                "runs; D corrected with it is judged by its own criteria",
                soft_wrap=True,
            )
        for item in thermo_table(stores, campaign.systems()[0].model_id):
            console.print(item, soft_wrap=isinstance(item, str))
        rmse = model_doc.get("rmse_forces_eV_per_A")
        console.print(
            f"demo model {model_doc.get('name')}: held-out force RMSE {rmse:.3f} eV/Å (a small demo model, not a "
            "production potential; real campaigns pass a fine-tuned MACE file with --model and run on a GPU)",
            soft_wrap=True,
        )
        console.rule("what to look at")
        for line in write_outputs(stores, campaign.name, campaign.systems()[0].model_id, output_dir):
            console.print(line, soft_wrap=True, markup=False)
    console.print(
        f"demo finished in {time.perf_counter() - started:.0f} s; database in {settings.data_dir}", soft_wrap=True
    )


def write_outputs(stores: ElectroDBStores, campaign: str, model_id: str, out: Path) -> list[str]:
    """Plots (g(r) with n(r), MSD with its fit window, γ±/φ vs experiment) and an export of the campaign.

    Returns the lines that tell the user where everything is and how to open the explorer.
    """

    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for doc in stores.electrolytes.query({"campaign_ids": campaign}, sort={"salt": 1, "molality": 1}):
        tid = doc["trajectory_ids"][0]
        label = f"{doc['salt']}-{doc['molality']:.2f}m"
        structure = stores.structure.query_one({"trajectory_id": tid})
        transport = stores.transport.query_one({"trajectory_id": tid})
        if structure:
            written.append(plot_rdf(structure, plots / f"rdf-{label}.png"))
        if transport:
            written.append(plot_msd(transport, plots / f"msd-{label}.png"))
    for doc in stores.thermo.query({"model_id": model_id}):
        path = plot_activity(doc, plots / f"activity-{doc['salt']}.png")
        if path is not None:
            written.append(path)
    table = out / "electrolytes.csv"
    rows = export_table(stores, "csv", table, filters={"campaign": campaign})
    return [
        f"plots ({len(written)} PNG: g(r) with n(r) and the experimental first peak, MSD with its fit window"
        + (", γ±/φ vs experiment" if any("activity" in p.name for p in written) else "")
        + f"): {plots}",
        f"export ({rows} rows, values with their status and experiment): {table}",
        "explorer: run `electrodb serve` and open http://127.0.0.1:8000/ (API docs at /docs)",
    ]
