"""PNG figures users look at before trusting a number: g(r) with n(r), the MSD with its fit window, and the
collective charge MSD with its fit window (σ, σ_NE, t₊).

Legends are never truncated: a long label (an MSD's reason for not converging, an experiment's sources) is
wrapped and the legend goes below the axes, the figure growing to hold it. The n(r) axis of an RDF panel is
scaled to the first shells (:func:`n_axis_limit`), not to n at the largest r, which grows like r³.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from electrodb.builders.reference import experimental_shell
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.safe_files import atomic_output

__all__ = [
    "activity_figure",
    "experimental_peaks",
    "find_property_doc",
    "mscd_figure",
    "msd_figure",
    "n_axis_limit",
    "plot_activity",
    "plot_mscd",
    "plot_msd",
    "plot_rdf",
    "rdf_figure",
    "wrap_label",
]

#: Characters per legend line below a figure (fits its width at the legend's font size).
LEGEND_WIDTH = 100
#: Height (inches) of one legend line at font size 7.5, spacing included.
LEGEND_LINE_IN = 0.16


def _save(fig: Figure, out: Path) -> Path:
    """Write the figure atomically as PNG (refusing symlinks, devices and missing folders), close it."""
    try:
        with atomic_output(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(out)


def wrap_label(text: str, width: int = LEGEND_WIDTH) -> str:
    """``text`` wrapped at word boundaries into lines of at most ``width`` characters (nothing dropped).

    Parameters
    ----------
    text
        A legend label.
    width
        Characters per line.
    """
    return "\n".join(textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False)) or text


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


def _smooth(g: np.ndarray, width: int = 5) -> np.ndarray:
    """Running mean of ``g`` over ``width`` bins (edges averaged over the bins that exist)."""
    if len(g) < width:
        return g
    kernel = np.ones(width)
    return np.convolve(g, kernel, mode="same") / np.convolve(np.ones_like(g), kernel, mode="same")


def _first_minimum(r: np.ndarray, g: np.ndarray) -> float | None:
    """Position of the first minimum of ``g`` after its highest peak (None without an interior one)."""
    peak = int(np.argmax(g))
    after = np.flatnonzero((r > r[peak]) & (r <= r[peak] + 3.0))
    if len(after) < 3:
        return None
    i = after[int(np.argmin(g[after]))]
    return float(r[i]) if i != after[-1] and g[i] < g[peak] else None


def _second_minimum(r: np.ndarray, g: np.ndarray, r_min: float) -> float | None:
    """Position of the minimum after the second peak, within 3 Å of each other (None without interior ones)."""
    window = np.flatnonzero((r > r_min) & (r <= r_min + 3.0))
    if len(window) < 3:
        return None
    peak = window[int(np.argmax(g[window]))]
    after = np.flatnonzero((r > r[peak]) & (r <= r[peak] + 3.0))
    if peak == window[-1] or len(after) < 3:
        return None
    i = after[int(np.argmin(g[after]))]
    return float(r[i]) if i != after[-1] and g[peak] - g[i] > 0.02 else None


def n_axis_limit(r: Any, g: Any, n: Any, r_min: float | None = None) -> float | None:
    """Upper limit of an n(r) axis that shows the first two shells instead of n at the largest r.

    n(r) grows like r³, so scaled to its last point the first shell's plateau is a flat line near zero. The
    axis runs to 1.1 × n at the second minimum of g(r) (smoothed over 5 bins) when the plotted range has one,
    else to 2.5 × n at the first minimum (the explorer's rule); never below 1.2 × n at the first minimum nor
    above n's largest value.

    Parameters
    ----------
    r, g, n
        The radial grid (Å), g(r) and the running coordination number n(r).
    r_min
        The first minimum used for the coordination number (the structure document's shell); found from g
        when None.

    Returns
    -------
    float or None
        The limit; None (leave the axis to matplotlib) when there is no first minimum or n is not positive.
    """
    r, g, n = (np.asarray(a, dtype=float) for a in (r, g, n))
    ok = np.isfinite(r) & np.isfinite(g) & np.isfinite(n)
    r, g, n = r[ok], g[ok], n[ok]
    if len(r) < 5 or not np.all(np.diff(r) > 0):
        return None
    smooth = _smooth(g)
    if r_min is None or not np.isfinite(r_min) or not r[0] < r_min < r[-1]:
        r_min = _first_minimum(r, smooth)
    if r_min is None:
        return None
    n_first = float(np.interp(r_min, r, n))
    n_top = float(n.max())
    if not n_first > 0 or not n_top > 0:
        return None
    r_second = _second_minimum(r, smooth, r_min)
    limit = 1.1 * float(np.interp(r_second, r, n)) if r_second is not None else 2.5 * n_first
    return min(max(limit, 1.2 * n_first), n_top)


def rdf_figure(doc: dict[str, Any]) -> Figure:
    """One panel per pair: g(r) (with block error band), the running coordination number n(r) (its axis scaled to
    the first shells, :func:`n_axis_limit`), the first minimum used for the CN (dotted) and, for ion–water pairs,
    the experimental first-peak position (dashed).

    Parameters
    ----------
    doc
        A structure document (``rdf``, ``shells``, ``salt``, ``molality``, ``temperature``, ``trajectory_id``).
    """
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
        twin.plot(d["r"], d["n"], color="C3", lw=1.0)
        twin.set_ylabel("n(r)", color="C3")
        top = n_axis_limit(d["r"], d["g"], d["n"], shell.get("r_min"))
        if top is not None:
            twin.set_ylim(0.0, top)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.suptitle(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K — {doc['trajectory_id']}")
    fig.tight_layout()
    return fig


def plot_rdf(doc: dict[str, Any], out: Path) -> Path:
    """Write :func:`rdf_figure` of a structure document to ``out`` (PNG); return the path."""
    return _save(rdf_figure(doc), out)


def _msd_label(species: str, entry: dict[str, Any]) -> str:
    """Legend text of one species: D with its error, or why there is no D (the whole reason, wrapped)."""
    if entry.get("D") is not None and entry.get("status") == "converged":
        err = entry.get("D_err")
        return f"{species}: D = {entry['D']:.2f}" + (f" ± {err:.2f}" if err else "") + " ×1e-9 m²/s"
    why = entry.get("reason") or entry.get("status") or "no D"
    return wrap_label(f"{species}: not converged ({why})")


def msd_figure(doc: dict[str, Any]) -> Figure:
    """MSD per species on log–log axes with the fitted diffusive window shaded and D (or why not) in the legend.

    The legend sits below the axes and the figure grows with its lines, so no reason is cut.

    Parameters
    ----------
    doc
        A transport document (``msd``, ``diffusion``, ``salt``, ``molality``, ``temperature``).
    """
    labels = [_msd_label(s, doc["diffusion"].get(s, {})) for s in doc["msd"]]
    n_lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(7.5, 4.5 + LEGEND_LINE_IN * n_lines), layout="constrained")
    for k, (species, curve) in enumerate(doc["msd"].items()):
        t, msd = curve["t_ps"][1:], curve["msd_A2"][1:]
        ax.loglog(t, msd, color=f"C{k}", label=labels[k])
        window = doc["diffusion"].get(species, {}).get("fit_window_ps")
        if window:
            ax.axvspan(window[0], window[1], color=f"C{k}", alpha=0.08)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    if labels:
        fig.legend(loc="outside lower left", fontsize=7.5, frameon=False)
    ax.set_title(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K (shaded: fit windows)")
    return fig


def plot_msd(doc: dict[str, Any], out: Path) -> Path:
    """Write :func:`msd_figure` of a transport document to ``out`` (PNG); return the path."""
    return _save(msd_figure(doc), out)


def _collective_label(name: str, value: float | None, err: float | None, entry: dict[str, Any], unit: str) -> str:
    """Legend text of one collective quantity: value ± error with its status, or why there is none (wrapped)."""
    status = entry.get("status") or "no status"
    if value is None:
        return wrap_label(f"{name}: {status} ({entry.get('reason') or 'not computed'})")
    text = f"{name} = {value:.3g}" + (f" ± {err:.2g}" if err is not None else "") + f"{unit} ({status})"
    if status != "converged" and entry.get("reason"):
        text += f": {entry['reason']}"
    return wrap_label(text)


def mscd_figure(doc: dict[str, Any]) -> Figure:
    """The collective charge MSD ⟨|Σ zᵢΔrᵢ|²⟩ with its Einstein–Helfand fit over the shaded window, beside the ions'
    self part Σ zᵢ²⟨|Δrᵢ|²⟩ (what it would be without ion–ion correlation, i.e. σ_NE), on log–log axes; σ, σ_NE,
    σ/σ_NE and t₊ with their statuses (or why not) in the legend below the axes.

    Parameters
    ----------
    doc
        A transport document (``conductivity``, ``salt``, ``molality``, ``temperature``).
    """
    c = doc.get("conductivity") or {}
    curve, fit = c.get("msd") or {}, c.get("fit") or {}
    ne, ion, tr = c.get("nernst_einstein") or {}, c.get("ionicity") or {}, c.get("transference") or {}
    labels = [
        _collective_label("σ", c.get("sigma_S_m"), c.get("sigma_err_S_m"), c, " S/m"),
        _collective_label("σ_NE", ne.get("sigma_S_m"), ne.get("sigma_err_S_m"), ne, " S/m"),
        _collective_label("σ/σ_NE", ion.get("value"), ion.get("err"), ion, ""),
        _collective_label("t₊", tr.get("t_plus"), tr.get("t_plus_err"), tr, ""),
    ]
    if not c:
        labels = ["no conductivity in this document (built before it existed: electrodb build --rebuild)"]
    n_lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(7.5, 4.5 + LEGEND_LINE_IN * n_lines), layout="constrained")
    t = np.asarray(curve.get("t_ps") or [], dtype=float)
    if t.size > 1:
        ax.loglog(t[1:], curve["mscd_A2"][1:], color="C0", label=labels[0])
        ax.loglog(t[1:], curve["self_A2"][1:], color="C1", ls="--", label="self part Σz²MSD (= σ_NE line)")
        window = fit.get("window_ps")
        if window and fit.get("slope_A2_ps") is not None:
            ax.axvspan(window[0], window[1], color="C0", alpha=0.08)
            tw = np.geomspace(max(window[0], t[1]), window[1], 50)
            ax.loglog(tw, fit["intercept_A2"] + fit["slope_A2_ps"] * tw, color="k", lw=1, ls=":", label="fit")
        for label in labels[1:]:
            ax.plot([], [], " ", label=label)
    else:
        ax.text(0.5, 0.5, "no collective MSD", ha="center", va="center", transform=ax.transAxes)
        for label in labels:
            ax.plot([], [], " ", label=label)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("charge MSD (e² Å²)")
    fig.legend(loc="outside lower left", fontsize=7.5, frameon=False)
    ax.set_title(f"{doc['salt']} {doc['molality']:.2f} mol/kg, {doc['temperature']:.0f} K (shaded: fit window)")
    return fig


def plot_mscd(doc: dict[str, Any], out: Path) -> Path:
    """Write :func:`mscd_figure` of a transport document to ``out`` (PNG); return the path."""
    return _save(mscd_figure(doc), out)


def activity_figure(doc: dict[str, Any]) -> Figure | None:
    """γ± and φ of a thermo document's concentration series beside experiment (Hamer & Wu tables).

    Every source of the experimental table is named in full (wrapped) in the legends below the panels.

    Parameters
    ----------
    doc
        A thermo document (``series``, ``experiment``, ``salt``, ``temperature``, ``status``).

    Returns
    -------
    Figure or None
        None when the document has no series.
    """
    series = doc.get("series")
    if not series:
        return None
    tables = doc.get("experiment", {}).get("tables", {})
    sources = {key: ", ".join(tables.get(key, {}).get("source") or []) for key in ("gamma", "phi")}
    n_lines = max(wrap_label(f"experiment ({s})", 60).count("\n") + 2 for s in sources.values())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4 + LEGEND_LINE_IN * n_lines), layout="constrained")
    for ax, key, name in ((axes[0], "gamma", "γ±"), (axes[1], "phi", "φ")):
        m, y, err = series["molality"], series.get(key), series.get(f"{key}_err")
        if y:
            ax.errorbar(m, y, yerr=err if err else None, fmt="o-", color="C0", capsize=3, label="ElectroDB (KB)")
        ref = tables.get(key, {})
        if ref.get("molality"):
            label = wrap_label(f"experiment ({sources[key]})", 60)
            ax.plot(ref["molality"], ref["value"], "k--", lw=1, label=label)
        ax.set_xlabel("molality (mol/kg)")
        ax.set_ylabel(name)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    status = doc.get("status", "")
    fig.suptitle(f"{doc['salt']} {doc['temperature']:.0f} K: Kirkwood–Buff activity ({status})")
    return fig


def plot_activity(doc: dict[str, Any], out: Path) -> Path | None:
    """Write :func:`activity_figure` of a thermo document to ``out`` (PNG); None (nothing written) without a series."""
    fig = activity_figure(doc)
    return None if fig is None else _save(fig, out)
