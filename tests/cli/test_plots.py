"""The CLI's figures (issue 22, row 16): legends whole and inside the figure; n(r) axes show the first shells."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from electrodb.cli.plots import activity_figure, msd_figure, n_axis_limit, plot_msd, rdf_figure

#: A reason as long as the diffusion verdict writes them (several criteria joined).
REASON = (
    "no lag range where the MSD grows linearly in time (local log-log slope within 0.15 of 1); the MSD does not "
    "grow linearly over 0.2-1.5 ps (log-log slope 0.62, not within 0.15 of 1): caged, sub-diffusive or "
    "ballistic motion, not diffusion; RMS displacement at window end 1.10 A < 3 A (the particles have not left "
    "their first neighbours)"
)
R = np.linspace(0.05, 12.0, 240)
RHO_O = 0.0334  # water oxygens per Å³


def _two_shell_rdf() -> dict[str, list[float]]:
    """A Na–O-like g(r): first peak 2.4 Å, first minimum 3.2 Å, second peak 4.5 Å, second minimum 5.6 Å."""
    core = 1.0 / (1.0 + np.exp(-(R - 2.1) / 0.06))
    g = core * (
        1.0
        + 6.0 * np.exp(-(((R - 2.4) / 0.22) ** 2))
        - 0.8 * np.exp(-(((R - 3.25) / 0.3) ** 2))
        + 0.45 * np.exp(-(((R - 4.5) / 0.45) ** 2))
        - 0.3 * np.exp(-(((R - 5.6) / 0.4) ** 2))
    )
    n = np.cumsum(4.0 * np.pi * R**2 * g * RHO_O * (R[1] - R[0]))
    return {"r": R.tolist(), "g": g.tolist(), "n": n.tolist()}


def _inside(fig: Any, artist: Any) -> bool:
    fig.canvas.draw()
    box, page = artist.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1


def _legend_text(legend: Any) -> list[str]:
    return [t.get_text().replace("\n", " ") for t in legend.get_texts()]


def test_msd_legend_keeps_every_reason_whole_and_inside_the_figure(tmp_path):
    t = np.linspace(0.0, 10.0, 60)
    doc = {
        "salt": "NaCl",
        "molality": 1.0,
        "temperature": 298.15,
        "msd": {s: {"t_ps": t.tolist(), "msd_A2": (k + 1.0) * t} for k, s in enumerate(("Na", "Cl", "O_w"))},
        "diffusion": {
            "Na": {"D": 1.3, "D_err": 0.2, "status": "unconverged", "reason": REASON},
            "Cl": {"D": 1.9, "D_err": 0.1, "status": "converged", "fit_window_ps": [1.0, 5.0]},
            "O_w": {"D": None, "status": "insufficient", "reason": "no diffusive regime: " + REASON},
        },
    }
    fig = msd_figure(doc)
    try:
        legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
        texts = _legend_text(legend)
        assert texts[0] == f"Na: not converged ({REASON})"  # the whole reason, never cut mid-word
        assert texts[1] == "Cl: D = 1.90 ± 0.10 ×1e-9 m²/s"
        assert texts[2] == f"O_w: not converged (no diffusive regime: {REASON})"
        assert _inside(fig, legend)
        box = legend.get_window_extent()
        plot = fig.axes[0].get_window_extent()
        assert box.y1 <= plot.y0 or box.x0 >= plot.x1  # beside or below the curves, not over them
    finally:
        plt.close(fig)
    out = plot_msd(doc, tmp_path / "msd.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rdf_n_axis_shows_the_first_shells():
    curve = _two_shell_rdf()
    r, n = np.array(curve["r"]), np.array(curve["n"])
    n_first, n_second = np.interp(3.25, r, n), np.interp(5.6, r, n)
    doc = {
        "salt": "NaCl",
        "molality": 1.0,
        "temperature": 298.15,
        "trajectory_id": "t-1",
        "cation": "Na",
        "anion": "Cl",
        "rdf": {"cation-O_w": curve},
        "shells": {"cation-O_w": {"r_min": 3.25, "cn": float(n_first), "status": "converged"}},
    }
    fig = rdf_figure(doc)
    try:
        twin = next(ax for ax in fig.axes if ax.get_ylabel() == "n(r)")
        top = twin.get_ylim()[1]
        assert n[-1] > 150  # what the old axis ran to: the first shell a flat line at the bottom
        assert top == pytest.approx(1.1 * n_second, rel=0.05)  # a little above n at the second minimum
        assert n_first / top > 0.15  # the first shell's plateau is visible
    finally:
        plt.close(fig)


def test_n_axis_limit_falls_back_without_a_second_minimum():
    curve = _two_shell_rdf()
    cut = int(np.searchsorted(R, 4.6))  # a small box: the range ends on the second peak
    r, g, n = (np.array(curve[k])[:cut] for k in ("r", "g", "n"))
    n_first = np.interp(3.25, r, n)
    assert n_axis_limit(r, g, n, 3.25) == pytest.approx(min(2.5 * n_first, n.max()))
    assert n_axis_limit(r, g, n) == pytest.approx(min(2.5 * np.interp(3.25, r, n), n.max()), rel=0.05)
    assert n_axis_limit(r, np.ones_like(r), np.zeros_like(r)) is None  # no shell, no n: matplotlib decides


def test_activity_legend_names_every_source():
    sources = ["Hamer & Wu (1972), J. Phys. Chem. Ref. Data 1, 1047", "Robinson & Stokes (1959), Electrolyte Solutions"]
    table = {"molality": [0.5, 1.0, 2.0], "value": [0.68, 0.66, 0.67], "source": sources}
    doc = {
        "salt": "NaCl",
        "temperature": 298.15,
        "status": "converged",
        "series": {"molality": [0.5, 1.0, 2.0], "gamma": [0.7, 0.65, 0.66], "phi": [0.92, 0.93, 0.98]},
        "experiment": {"tables": {"gamma": table, "phi": table}},
    }
    fig = activity_figure(doc)
    try:
        for ax in fig.axes:
            legend = ax.get_legend()
            assert f"experiment ({', '.join(sources)})" in _legend_text(legend)
            assert _inside(fig, legend)
    finally:
        plt.close(fig)
