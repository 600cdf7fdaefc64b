"""PNG figures users look at before trusting a number: g(r) with n(r), and MSD with its fit window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from electrodb.stores import ElectroDBStores

__all__ = ["find_property_doc", "plot_msd", "plot_rdf"]


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
    """One panel per pair: g(r) (with block error band) and the running coordination number n(r)."""
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
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_title(pair + (f"  CN={shell['cn']:.2f}" if shell.get("cn") is not None else ""), fontsize=10)
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
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_msd(doc: dict[str, Any], out: Path) -> Path:
    """MSD per species on log–log axes with the fitted diffusive window shaded and D in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k, (species, curve) in enumerate(doc["msd"].items()):
        t, msd = curve["t_ps"][1:], curve["msd_A2"][1:]
        entry = doc["diffusion"].get(species, {})
        label = species
        if entry.get("D") is not None:
            err = entry.get("D_err")
            label += f": D = {entry['D']:.2f}" + (f" ± {err:.2f}" if err else "") + " ×1e-9 m²/s"
        else:
            label += f": {entry.get('status', 'no D')}"
        ax.loglog(t, msd, color=f"C{k}", label=label)
        window = entry.get("fit_window_ps")
        if window:
            ax.axvspan(window[0], window[1], color=f"C{k}", alpha=0.08)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=8)
    ax.set_title(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K (shaded: fit windows)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
