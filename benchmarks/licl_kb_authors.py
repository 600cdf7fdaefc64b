"""a_cc of LiCl from the published NNP g(r) of Zhang et al.: ElectroDB's chain beside the authors' recipe.

Reads the authors' g(r) files (``shared/external/zhang2023-licl-nequip/``; Zhang, Pagotto, Gould & Duignan,
arXiv:2310.12535; 512 waters + 12 or 24 LiCl, L = 25.05 / 25.26 Å, 300 K) and prints, per box:

* the five KB integrals (Å^3) and a_cc from ``electrodb.analysis.kirkwood_buff.kb_integral`` with every
  estimator (raw, ganguly, kruger, both = the builders' default), the g(r) taken in the normalisation of
  ``electrodb.analysis.structure`` and integrated to the last grid point <= L/2;
* the authors' recipe: each g divided by its mean over [L/2 − w, L/2] (w = 0.5, 1, 2 Å), 4π r^2 (g − 1)
  integrated to L/2, a_cc = 1 / (1 + 2 ρ_pairs (G_cc − G_co)), G_cc = (G_++ + G_−− + 2 G_+−)/4,
  G_co = (G_+o + G_−o)/2;
* the experimental 1 + d ln y±/d ln c at the box molarity (``dlgambdlcexpLiCl.dat``, linear interpolation);
* the electroneutrality sum rule ρ_s (G_+− − G_++) and ρ_s (G_+− − G_−−), which is 1 in the thermodynamic
  limit (a check on the ion–ion integrals that no estimator imposes).

Run: ``.venv/bin/python benchmarks/licl_kb_authors.py`` (under a second; no GPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from electrodb.analysis.kirkwood_buff import (
    METHODS,
    MOL_PER_L_TO_PER_A3,
    activity_derivative,
    kb_integral,
    kb_tail_normalised,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "external" / "zhang2023-licl-nequip"
#: (label, file tag, box edge Å, LiCl formula units); 512 waters in both.
BOXES = (("1.2 M", "1p2M", 25.05, 12), ("2.4 M", "2p4M", 25.26, 24))
N_WATERS = 512
#: file columns after r: Li–Li, Li–Cl, Cl–Cl, Li–O, Cl–O -> (key, column, partner count field, like pair)
PAIRS = (
    ("pp", 1, "ion", True),
    ("mm", 3, "ion", True),
    ("pm", 2, "ion", False),
    ("pw", 4, "w", False),
    ("mw", 5, "w", False),
)
TAIL_WIDTHS_A = (0.5, 1.0, 2.0)


def load_box(tag: str, box_length: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Grid (Å, bin centres <= L/2) and g(r) per pair key of one published box."""
    path = DATA / f"rdf_data_LiCl-out.lammpstrj-l3-bigbox-{tag}-run1.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the shared folder with the published LiCl data is missing")
    data = np.loadtxt(path)
    keep = data[:, 0] <= box_length / 2
    return data[keep, 0], {key: data[keep, col] for key, col, _, _ in PAIRS}


def experiment_acc(molarity: float) -> float:
    """Experimental 1 + d ln y±/d ln c of LiCl at ``molarity`` (mol/L), the authors' curve."""
    exp = np.loadtxt(DATA / "dlgambdlcexpLiCl.dat")
    return float(np.interp(molarity, exp[:, 0], exp[:, 1]))


def chain_integrals(r: np.ndarray, g: dict[str, np.ndarray], n_salt: int, volume: float) -> dict[str, dict[str, float]]:
    """{method: {pair key: G (Å^3)}} from ``kb_integral`` (defaults: windows [R/2, R], R = r[-1])."""
    out: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    for key, _, kind, same in PAIRS:
        res = kb_integral(r, g[key], n_salt if kind == "ion" else N_WATERS, volume, same)
        for m in METHODS:
            out[m][key] = res.values[m]
    return out


def authors_integrals(r: np.ndarray, g: dict[str, np.ndarray], tail_width: float) -> dict[str, float]:
    return {key: float(kb_tail_normalised(r, g[key], tail_width)) for key, _, _, _ in PAIRS}


def authors_acc(gs: dict[str, float], molarity: float) -> float:
    """a_cc = 1 / (1 + 2 ρ_pairs (G_cc − G_co)), written out as the authors do."""
    rho_pairs = molarity * MOL_PER_L_TO_PER_A3
    g_cc = (gs["pp"] + gs["mm"] + 2.0 * gs["pm"]) / 4.0
    g_co = (gs["pw"] + gs["mw"]) / 2.0
    return 1.0 / (1.0 + 2.0 * rho_pairs * (g_cc - g_co))


def chain_acc(gs: dict[str, float], molarity: float) -> float:
    return activity_derivative(molarity, gs["pp"], gs["mm"], gs["pm"], gs["pw"], gs["mw"])[0]


def sum_rule(gs: dict[str, float], n_salt: int, volume: float) -> tuple[float, float]:
    rho = n_salt / volume
    return rho * (gs["pm"] - gs["pp"]), rho * (gs["pm"] - gs["mm"])


def main() -> int:
    header = f"{'box':6s} {'estimator':22s} " + " ".join(f"{k:>7s}" for k, *_ in PAIRS)
    header += f" {'a_cc':>7s} {'1/a_cc':>7s} {'sum+':>6s} {'sum-':>6s}"
    print("G in Å^3; sum± = ρ_s (G_+− − G_±±), 1 in the thermodynamic limit")
    print(header)
    for label, tag, length, n_salt in BOXES:
        volume = length**3
        molarity = n_salt / (volume * MOL_PER_L_TO_PER_A3)
        r, g = load_box(tag, length)
        rows = [
            (f"electrodb {m}", gs, chain_acc(gs, molarity)) for m, gs in chain_integrals(r, g, n_salt, volume).items()
        ]
        for w in TAIL_WIDTHS_A:
            gs = authors_integrals(r, g, w)
            rows.append((f"authors (tail {w:g} Å)", gs, authors_acc(gs, molarity)))
        for name, gs, acc in rows:
            sp, sm = sum_rule(gs, n_salt, volume)
            vals = " ".join(f"{gs[k]:7.0f}" for k, *_ in PAIRS)
            print(f"{label:6s} {name:22s} {vals} {acc:7.3f} {1 / acc:7.3f} {sp:6.2f} {sm:6.2f}")
        print(f"{label:6s} {'experiment':22s} {'':39s} {experiment_acc(molarity):7.3f}   (c = {molarity:.3f} mol/L)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
