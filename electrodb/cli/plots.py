"""PNG figures users look at before trusting a number: g(r) with n(r), and MSD with its fit window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from electrodb.builders.reference import experimental_shell
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.safe_files import atomic_output

__all__ = ["experimental_peaks", "find_property_doc", "plot_activity", "plot_msd", "plot_rdf"]


def _save(fig: Any, out: Path) -> Path:
    """Write the figure atomically as PNG (refusing symlinks, devices and missing folders), close it."""
    try:
        with atomic_output(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(out)


def experimental_peaks(doc: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Experimental ion–oxygen first-peak positions for a property document's ions: ``{pair: (r Å, source)}``."""
    out = {}
    for role in ("cation", "anion"):
        exp = experimental_shell(doc.get(role, "")).get("r")
        if exp is not None and exp.value is not None:
            out[f"{role}-O_w"] = (float(exp.value), exp.source)
    return out


def find_property_doc(stores: ElectroDBStores, collection: str, ident: str) -> dict[str, Any]:
    """A property document by trajectory id, or the first one of an electrolyte id (prefixes accepted)."""
    store = stores[collection]
    for field in ("trajectory_id", "electrolyte_id"):
        doc = store.query_one({field: ident})
        if doc:
            return doc
    matches = [
        d
        for d in store.query({}, properties=["trajectory_id", "electrolyte_id"])
        if d["trajectory_id"].startswith(ident) or d["electrolyte_id"].startswith(ident)
    ]
    if len(matches) == 1:
        return store.query_one({"trajectory_id": matches[0]["trajectory_id"]})
    hint = "several match; give more characters" if matches else "run `electrodb build` first, or check the id"
    raise KeyError(f"no {collection} document for {ident!r}: {hint}")


def plot_rdf(doc: dict[str, Any], out: Path) -> Path:
    """One panel per pair: g(r) (with block error band), the running coordination number n(r), the first
    minimum used for the CN (dotted) and, for ion–water pairs, the experimental first-peak position (dashed)."""
    experiment = experimental_peaks(doc)
    pairs = list(doc["rdf"])
    cols = 4
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        d = doc["rdf"][pair]
        ax.plot(d["r"], d["g"], color="C0", lw=1.3)
        if d.get("g_err"):
            lo = [g - e for g, e in zip(d["g"], d["g_err"], strict=True)]
            hi = [g + e for g, e in zip(d["g"], d["g_err"], strict=True)]
            ax.fill_between(d["r"], lo, hi, color="C0", alpha=0.25, lw=0)
        shell = doc.get("shells", {}).get(pair, {})
        if shell.get("r_min"):
            ax.axvline(shell["r_min"], color="grey", ls=":", lw=1)
        if pair in experiment:
            ax.axvline(experiment[pair][0], color="C2", ls="--", lw=1, label=f"exp. peak {experiment[pair][0]:.2f} Å")
            ax.legend(fontsize=7, loc="upper right")
        ax.axhline(1.0, color="k", lw=0.5)
        title = pair + (f"  CN={shell['cn']:.2f}" if shell.get("cn") is not None else "")
        if shell.get("status") not in (None, "converged"):
            title += " (n.c.)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        twin = ax.twinx()
        edges = d["r"]
        twin.plot(edges, d["n"], color="C3", lw=1.0)
        twin.set_ylabel("n(r)", color="C3")
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.suptitle(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K — {doc['trajectory_id']}")
    fig.tight_layout()
    return _save(fig, out)


def plot_msd(doc: dict[str, Any], out: Path) -> Path:
    """MSD per species on log–log axes with the fitted diffusive window shaded and D in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k, (species, curve) in enumerate(doc["msd"].items()):
        t, msd = curve["t_ps"][1:], curve["msd_A2"][1:]
        entry = doc["diffusion"].get(species, {})
        label = species
        if entry.get("D") is not None and entry.get("status") == "converged":
            err = entry.get("D_err")
            label += f": D = {entry['D']:.2f}" + (f" ± {err:.2f}" if err else "") + " ×1e-9 m²/s"
        else:
            label += f": not converged ({(entry.get('reason') or entry.get('status') or 'no D')[:60]})"
        ax.loglog(t, msd, color=f"C{k}", label=label)
        window = entry.get("fit_window_ps")
        if window:
            ax.axvspan(window[0], window[1], color=f"C{k}", alpha=0.08)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=8)
    ax.set_title(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K (shaded: fit windows)")
    fig.tight_layout()
    return _save(fig, out)


def plot_activity(doc: dict[str, Any], out: Path) -> Path | None:
    """γ± and φ of a thermo document's concentration series beside experiment (Hamer & Wu tables).

    Returns None (and writes nothing) when the document has no series.
    """
    series = doc.get("series")
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    tables = doc.get("experiment", {}).get("tables", {})
    for ax, key, name in ((axes[0], "gamma", "γ±"), (axes[1], "phi", "φ")):
        m, y, err = series["molality"], series.get(key), series.get(f"{key}_err")
        if y:
            ax.errorbar(m, y, yerr=err if err else None, fmt="o-", color="C0", capsize=3, label="ElectroDB (KB)")
        ref = tables.get(key, {})
        if ref.get("molality"):
            ax.plot(
                ref["molality"], ref["value"], "k--", lw=1, label="experiment (" + ", ".join(ref["source"])[:40] + ")"
            )
        ax.set_xlabel("molality (mol/kg)")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    status = doc.get("status", "")
    fig.suptitle(f"{doc['salt']} {doc['temperature']:.0f} K: Kirkwood–Buff activity ({status})")
    fig.tight_layout()
    return _save(fig, out)
