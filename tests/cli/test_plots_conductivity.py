"""``electrodb plot mscd``: the collective charge MSD with σ's fit window, its self part and the verdicts."""

from __future__ import annotations

import matplotlib.pyplot as plt

from electrodb.builders.conductivity import entry_from_result
from electrodb.cli.plots import mscd_figure, plot_mscd
from tests.analysis import conductivity_cases as cases


def _doc(entry: dict) -> dict:
    return {"salt": "NaCl", "molality": 1.0, "temperature": 300.0, "conductivity": entry}


def test_mscd_figure_shows_the_fit_window_and_every_value(tmp_path):
    res = cases.bound_pairs(seed=1, n=24, n_frames=2000).run()
    fig = mscd_figure(_doc(entry_from_result(res)))
    try:
        texts = [t.get_text().replace("\n", " ") for t in fig.legends[0].get_texts()]
        assert texts[0].startswith(f"σ = {res.sigma_S_m:.3g} ± ") and "S/m" in texts[0]
        assert any(t.startswith("σ_NE = ") for t in texts) and any(t.startswith("t₊ = ") for t in texts)
        assert "fit" in texts and any("self part" in t for t in texts)
        assert fig.axes[0].patches  # the shaded window
    finally:
        plt.close(fig)
    out = plot_mscd(_doc(entry_from_result(res)), tmp_path / "mscd.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mscd_figure_says_why_there_is_nothing(tmp_path):
    refused = cases.brownian_ions(seed=1, n_cations=8, n_frames=30).run()
    fig = mscd_figure(_doc(entry_from_result(refused)))
    texts = [t.get_text().replace("\n", " ") for t in fig.legends[0].get_texts()]
    assert texts[0].startswith("σ: insufficient (") and "too few" in texts[0]
    plt.close(fig)
    old = mscd_figure(_doc({}))
    assert "rebuild" in old.legends[0].get_texts()[0].get_text().replace("\n", " ")
    plt.close(old)
