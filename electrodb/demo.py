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

from electrodb.campaign import Campaign
from electrodb.settings import get_settings
from electrodb.stores import ElectroDBStores, get_stores

__all__ = ["DEMO_MODEL_NAME", "demo_campaign", "ensure_demo_model", "run_demo"]

DEMO_MODEL_NAME = "demo-mace"


def demo_campaign(model: str) -> Campaign:
    """The built-in demo campaign with ``model`` as its model reference."""
    text = resources.files("electrodb.data").joinpath("demo_campaign.yaml").read_text()
    data = yaml.safe_load(text)
    data["model"] = model
    return Campaign.model_validate(data)


def ensure_demo_model(stores: ElectroDBStores, console: Console, retrain: bool = False) -> tuple[Path, dict]:
    """Return (model file, model document) of the cached demo model, training it first if needed."""
    from electrodb.flows.training import (
        SamplingSettings,
        decode_configurations,
        materialize_model,
        sample_and_label,
        store_model,
    )
    from electrodb.training import TrainingSettings, train_mace

    cached = None if retrain else stores.models.query_one({"name": DEMO_MODEL_NAME}, sort={"last_updated": -1})
    if cached is not None:
        path = materialize_model(cached["model_id"], stores)
        console.print(
            f"[green]reusing cached demo model[/] {cached['model_id'][:23]} (held-out force RMSE "
            f"{cached['rmse_forces_eV_per_A']:.3f} eV/Å)"
        )
        return path, cached
    console.rule("1/4 demo model: sample, label with CHGNet-r2SCAN, train MACE")
    started = time.perf_counter()
    dataset = sample_and_label(SamplingSettings(), "chgnet:r2scan", log=lambda line: console.log(line))
    console.log(
        f"{dataset.n_configurations} labelled configurations ({dataset.n_skipped} rejected) in "
        f"{dataset.wall_time_s:.0f} s"
    )
    settings = TrainingSettings(max_num_epochs=10, start_swa=7)
    result = train_mace(
        decode_configurations(dataset.extxyz_zb64), settings, get_settings().work_dir / "train-demo-mace"
    )
    doc = store_model(stores, result, DEMO_MODEL_NAME, dataset.model_dump(exclude={"extxyz_zb64"}))
    console.log(
        f"trained MACE ({result.n_parameters} parameters) in {result.wall_time_s:.0f} s; held-out force RMSE "
        f"{result.rmse_forces_eV_per_A:.3f} eV/Å, energy RMSE {result.rmse_energy_meV_per_atom:.1f} meV/atom; "
        f"model step took {time.perf_counter() - started:.0f} s"
    )
    return materialize_model(doc.model_id, stores), doc.model_dump(mode="json")


def property_table(stores: ElectroDBStores, campaign: str) -> Table:
    """Computed properties of a campaign's electrolytes beside experiment (25 °C reference data)."""
    table = Table(title="ElectroDB demo: computed (± block error) vs experiment")
    for col in (
        "salt",
        "m (mol/kg)",
        "runs",
        "ps",
        "D+ (1e-9 m²/s)",
        "D- ",
        "D water",
        "r(+–O) Å",
        "CN(+–O)",
        "CIP frac.",
        "density kg/m³",
    ):
        table.add_column(col, justify="left" if col == "salt" else "right")

    def fmt(doc: dict, key: str, digits: int = 2) -> str:
        value, err, exp = doc.get(key), doc.get(f"{key}_err"), doc.get(f"exp_{key}")
        text = "—" if value is None else f"{value:.{digits}f}" + (f"±{err:.{digits}f}" if err else "")
        return text + (f" [dim](exp {exp:.{digits}f})[/]" if exp is not None else "")

    for doc in stores.electrolytes.query({"campaign_ids": campaign}, sort={"salt": 1, "molality": 1}):
        table.add_row(
            doc["salt"],
            f"{doc['molality']:.2f}",
            str(doc["n_runs"]),
            f"{doc['total_ps']:.1f}",
            fmt(doc, "D_cation"),
            fmt(doc, "D_anion"),
            fmt(doc, "D_water"),
            fmt(doc, "r_cation_O"),
            fmt(doc, "cn_cation_O", 1),
            fmt(doc, "cip_fraction_cation"),
            fmt(doc, "density", 0),
        )
    return table


def thermo_table(stores: ElectroDBStores, model_id: str) -> list[Table | str]:
    """γ± and φ per concentration series beside experiment, or why they could not be computed."""
    out: list[Table | str] = []
    for doc in stores.thermo.query({"model_id": model_id}, sort={"salt": 1}):
        if doc["status"] != "ok":
            tables = doc.get("experiment", {}).get("tables", {})
            exp = ", ".join(
                f"γ±({m:g})={v:.3f}"
                for m, v in zip(
                    tables.get("gamma", {}).get("molality", [])[:5],
                    tables.get("gamma", {}).get("value", [])[:5],
                    strict=False,
                )
            )
            per_system = "; ".join(
                f"m={s['molality']:.2f}: " + (s["error"] if "error" in s else f"a_cc={s['a_cc']:.3f}")
                for s in doc["systems"]
            )
            out.append(
                f"{doc['salt']}: activity coefficients not computed — {doc['reason']}. {per_system}"
                + (f". Experiment (Hamer & Wu): {exp}" if exp else "")
            )
            continue
        s = doc["series"]
        pitzer = doc.get("experiment", {}).get("pitzer_at_series", {})
        exp_gamma = dict(zip(pitzer.get("molality", []), pitzer.get("gamma", []), strict=False))
        exp_phi = dict(zip(pitzer.get("molality", []), pitzer.get("phi", []), strict=False))
        table = Table(title=f"{doc['salt']} {doc['temperature']:.0f} K: Kirkwood–Buff activity (exp: Pitzer fit)")
        for col in ("m (mol/kg)", "a_cc", "γ±", "γ± exp", "φ", "φ exp"):
            table.add_column(col, justify="right")
        for k, m in enumerate(s["molality"]):
            phi_err = s["phi_err"][k] if s.get("phi_err") else None
            table.add_row(
                f"{m:.2f}",
                f"{s['a_cc'][k]:.3f}±{s['a_cc_err'][k]:.3f}",
                f"{s['gamma'][k]:.3f}±{s['gamma_err'][k]:.3f}",
                f"{exp_gamma[m]:.3f}" if m in exp_gamma else "—",
                f"{s['phi'][k]:.3f}" + (f"±{phi_err:.3f}" if phi_err else ""),
                f"{exp_phi[m]:.3f}" if m in exp_phi else "—",
            )
        out.append(table)
    return out


def run_demo(console: Console, retrain: bool = False) -> None:
    """Train (or reuse) the demo model, run the demo campaign, build properties and print them."""
    from electrodb.builders import run_builders
    from electrodb.cli import _run_with_progress, plan_table

    started = time.perf_counter()
    settings = get_settings()
    console.print(f"database: {settings.describe()}")
    with get_stores() as stores:
        model_path, model_doc = ensure_demo_model(stores, console, retrain=retrain)
        campaign = demo_campaign(str(model_path))
        console.rule("2/4 plan")
        console.print(plan_table(campaign))
        console.rule("3/4 NNP molecular dynamics (equilibration + production per system)")
        summary = _run_with_progress(campaign, stores)
        console.print(
            f"completed {len(summary.completed)}, already done {len(summary.skipped)}, "
            f"unstable {len(summary.unstable)}, failed {len(summary.failed)} of {summary.total}"
        )
        for tid in summary.unstable:
            doc = stores.trajectories.query_one(
                {"trajectory_id": tid}, properties=["salt", "molality", "status_reason"]
            )
            console.print(f"[yellow]unstable[/] {doc['salt']} {doc['molality']:.2f} m: {doc['status_reason']}")
        console.rule("4/4 build properties")
        counts = run_builders(stores, log=console.log)
        console.log(f"builders processed {counts}")
        console.print(property_table(stores, campaign.name))
        for item in thermo_table(stores, campaign.systems()[0].model_id):
            console.print(item)
        rmse = model_doc.get("rmse_forces_eV_per_A")
        console.print(
            f"demo model held-out force RMSE: {rmse:.3f} eV/Å (a small demo model, not a production "
            "potential; real campaigns pass a fine-tuned MACE file with --model and run on a GPU)"
        )
    console.print(
        f"[bold green]demo finished in {time.perf_counter() - started:.0f} s[/]; "
        f"data in {settings.data_dir}; try `electrodb db info` and `electrodb serve`"
    )
