r"""Committee (ensemble) uncertainty of a neural-network potential: where K models disagree, the model extrapolates.

ElectroDB trains a *committee* of K MACE models on the same labelled configurations with different seeds and data
splits; one member (or the mean) drives the MD and all K are evaluated on stored frames.  The members agree where
the training data reached and disagree where it did not (query by committee, Behler 2016): their spread is a cheap,
label-free error estimate.  Pure numpy/scipy, no I/O.  Forces eV/Å, energies eV, lengths Å.  See
docs/committees.md for the longer account.

**Committee disagreement.**  The force disagreement of atom *i* is the DeePMD/DP-GEN "model deviation" (Zhang et
al. 2020), the root of the *population* variance (``1/K``) of the K force vectors (:func:`atom_disagreement`)::

    σ_F,i = sqrt( (1/K) Σ_k ||F_k,i − F̄_i||² ),   F̄_i = (1/K) Σ_k F_k,i          (eV/Å)

A frame is summarised by the max, mean and 95th percentile over its atoms and the atom of the max
(:func:`frame_disagreement`); the max flags a frame, since one atom in a configuration the model never saw is enough
to corrupt the dynamics.  Members scattering around the truth with independent per-component noise of std *s* give
``E[σ_F²] = 3 s² (K − 1)/K``.  The energy spread is the population std of the K total energies, meV/atom
(:func:`energy_spread`).

**Calibrating the threshold.**  σ_F is not an error: members share architecture, data and often a parent, so
committees are over-confident, and ``1/K`` shrinks small ones further.  On labelled held-out configurations the
true error of the driving model, ``e_i = ||F_driver,i − F_ref,i||``, fixes one scale α with ``e ≈ α σ_F`` in the
root-mean-square sense, the variance scaling of Musil et al. (2019) and Imbalzano et al. (2021)
(:func:`calibrate_threshold`)::

    α² = Σ_i e_i² / Σ_i σ_F,i²   (all held-out atoms),        threshold σ* = e_target / α

We match mean squares (a ratio of means) rather than average ``e_i²/σ_F,i²`` (the Gaussian maximum-likelihood
form of Musil et al.), because atoms with a near-zero σ_F dominate that average; α also absorbs the ``1/K``
convention and the finite-K bias.  How well σ_F *ranks* errors is the Spearman correlation per atom and per
configuration (max σ_F against max error); recall and precision say how many configurations whose largest atomic
error exceeds the target the threshold catches, and how many it flags falsely.

**The model-trust verdict** (:func:`trust_verdict`).  A frame is flagged when its max σ_F exceeds the threshold or
is not finite (a member blew up).  ``trusted``: at most ``max_flagged_fraction`` (5 %) of the audited frames
flagged.  ``extrapolating``: more; the run left the configurations the model was trained on, and its properties
rest on forces nobody checked.  ``insufficient``: fewer than ``min_frames`` frames audited.

**Choosing configurations to label** (:func:`select_diverse`).  Keep the configurations scoring above the
threshold, start from the most uncertain, add the farthest (Euclidean) from all chosen in the space of
:func:`structure_fingerprint` (smoothed element-pair distance histograms per atom), and skip near-duplicates closer
than ``min_distance``: consecutive MD frames are nearly identical, and ten copies of one excursion teach the model
once.  Fingerprint distances scale with the system, so set ``min_distance`` to a fraction (0.1–0.2) of the distance
between two decorrelated frames of the run (random 0.01 Å displacements move a fingerprint a few % of it).

Warnings
--------
* Committees underestimate errors far out of distribution: all members can extrapolate the same wrong way, so a
  small σ_F is necessary, not sufficient, for a correct force.
* Members fine-tuned from one parent (or trained on one split) are correlated: σ_F is smaller than the error, and
  only a calibration says by how much.
* Calibrate on held-out labels no member trained on; on training data α comes out far too small.
* α is fitted per atom in the RMS sense, while a frame's largest error also carries the noise of its worst atom:
  check the reported recall, and lower the target if it misses too many bad configurations.

Example
-------
>>> sigma = atom_disagreement(forces)                           # (K, F, N, 3) eV/Å -> (F, N)
>>> frames = frame_disagreement(sigma)
>>> cal = calibrate_threshold(sig_held_out, err_held_out, 0.1)  # per-atom arrays, one per configuration
>>> verdict = trust_verdict(frames["max"], cal["threshold_eV_per_A"])
>>> fps = np.array([structure_fingerprint(x, cell, symbols) for x in positions])
>>> d_far = np.linalg.norm(fps[0] - fps[-1])                    # two decorrelated frames
>>> picks = select_diverse(fps, frames["max"], 20, threshold=cal["threshold_eV_per_A"], min_distance=0.15 * d_far)

References
----------
* J. Behler, J. Chem. Phys. 145, 170901 (2016) — query by committee for neural-network potentials.
* Y. Zhang, H. Wang, W. Chen, J. Zeng, L. Zhang, H. Wang, W. E, Comput. Phys. Commun. 253, 107206 (2020) —
  DP-GEN and the model deviation.
* F. Musil, M. J. Willatt, M. A. Langovoy, M. Ceriotti, J. Chem. Theory Comput. 15, 906 (2019) — calibrated
  committee uncertainties.
* G. Imbalzano, Y. Zhuang, V. Kapil, K. Rossi, E. A. Engel, F. Grasselli, M. Ceriotti, J. Chem. Phys. 154, 074102
  (2021) — uncertainty estimation for molecular dynamics with committee models.
* C. Schran, K. Brezina, O. Marsalek, J. Chem. Phys. 153, 104105 (2020) — committee neural-network potentials.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from electrodb.analysis.periodic import as_cells, max_cutoff
from electrodb.analysis.structure import pair_rdfs

__all__ = [
    "atom_disagreement",
    "calibrate_threshold",
    "energy_spread",
    "frame_disagreement",
    "select_diverse",
    "structure_fingerprint",
    "trust_verdict",
    "worst_frames",
]

_CHUNK_BYTES = 64 * 2**20  # float64 working memory of atom_disagreement
_FINE = 16  # fine histogram bins per fingerprint bin, smoothed onto the coarse ones


def _force_text(x: float) -> str:
    """``0.30``, ``0.25``, ``0.025``: two decimals unless that would round the number."""
    two = f"{x:.2f}"
    return two if abs(float(two) - x) <= 1e-9 * max(1.0, abs(x)) else f"{x:.3g}"


def _percent(x: float) -> str:
    return f"{100.0 * x:.3g} %"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------------- disagreement
def atom_disagreement(forces: np.ndarray) -> np.ndarray:
    """Per-atom committee force disagreement σ_F (DeePMD "model deviation", population variance ``1/K``).

    Parameters
    ----------
    forces : ndarray, shape (K, F, N, 3) or (K, N, 3)
        Forces of K >= 2 members on F frames of N atoms, eV/Å (any float dtype; summed in float64).

    Returns
    -------
    ndarray, shape (F, N) or (N,)
        ``σ_F,i = sqrt((1/K) Σ_k ||F_k,i − F̄_i||²)``, eV/Å; NaN where a member's force is not finite.
    """
    f = np.asarray(forces)
    if f.ndim not in (3, 4) or f.shape[-1] != 3:
        raise ValueError(f"forces must have shape (K, F, N, 3) or (K, N, 3); got {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"a committee needs at least 2 members to disagree; got K={f.shape[0]}")
    one = f.ndim == 3
    f = f[:, None] if one else f
    k, n_frames, n_atoms = f.shape[:3]
    step = max(1, _CHUNK_BYTES // max(1, 2 * k * n_atoms * 3 * 8))
    out = np.empty((n_frames, n_atoms))
    with np.errstate(invalid="ignore", over="ignore"):
        for s in range(0, n_frames, step):
            out[s : s + step] = np.var(f[:, s : s + step], axis=0, dtype=np.float64).sum(axis=-1)
    np.sqrt(out, out=out)
    return out[0] if one else out


def frame_disagreement(sigma: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame summaries over atoms of σ_F, shape (F, N) (or (N,) for one frame), eV/Å.

    Returns ``max``, ``mean``, ``p95`` (95th percentile over atoms; eV/Å) and ``argmax`` (atom index of the max),
    each of shape (F,).  A non-finite σ_F makes the frame's max, mean and p95 NaN, and ``argmax`` that atom.
    """
    s = np.asarray(sigma, dtype=np.float64)
    s = s[None] if s.ndim == 1 else s
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"sigma must have shape (F, N) with N >= 1; got {np.shape(sigma)}")
    s = np.where(np.isfinite(s), s, np.nan)  # argmax returns the first NaN
    return {
        "max": s.max(axis=1),
        "mean": s.mean(axis=1),
        "p95": np.percentile(s, 95.0, axis=1),
        "argmax": np.argmax(s, axis=1),
    }


def energy_spread(energies: np.ndarray, n_atoms: int) -> np.ndarray:
    """Per-frame committee energy spread ``1e3 · std_k(E_k) / N`` (population std over members), meV/atom.

    ``energies`` are the total energies (eV) of K >= 2 members, shape (K, F) (or (K,) for one frame); the result has
    shape (F,).
    """
    e = np.asarray(energies, dtype=np.float64)
    e = e[:, None] if e.ndim == 1 else e
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"energies must have shape (K, F) with K >= 2 members; got {np.shape(energies)}")
    if int(n_atoms) < 1:
        raise ValueError(f"n_atoms must be at least 1; got {n_atoms}")
    return 1e3 * e.std(axis=0) / int(n_atoms)


# --------------------------------------------------------------------------------------------------------- verdict
def trust_verdict(
    frame_max: np.ndarray, threshold: float, *, max_flagged_fraction: float = 0.05, min_frames: int = 10
) -> dict[str, Any]:
    """Model-trust verdict of one trajectory from the per-frame max σ_F of its audited frames.

    Parameters
    ----------
    frame_max : ndarray, shape (F,)
        Max σ_F over atoms of each audited frame, eV/Å; NaN/inf (a member blew up) counts as flagged.
    threshold : float
        Flag frames with max σ_F above this, eV/Å (:func:`calibrate_threshold`); finite and > 0.
    max_flagged_fraction : float, default 0.05
        Largest fraction of flagged frames a trusted run may have.
    min_frames : int, default 10
        Fewer audited frames give ``insufficient``.

    Returns
    -------
    dict
        ``status`` (``trusted``/``extrapolating``/``insufficient``), ``reason`` ('' when trusted), ``criterion``,
        ``n_frames``, ``n_flagged``, ``frac_flagged``, ``threshold_eV_per_A``, ``sigma_F_max_p95`` and
        ``sigma_F_max_max`` (eV/Å, over the finite frames; None without any), ``n_nonfinite`` and ``note`` (what
        the non-finite frames mean, '' if none: also when trusted).
    """
    t, min_frames = float(threshold), int(min_frames)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"threshold must be a finite force above 0 eV/Å; got {threshold}")
    if not 0.0 <= max_flagged_fraction < 1.0 or min_frames < 1:
        raise ValueError("need 0 <= max_flagged_fraction < 1 and min_frames >= 1")
    x = np.asarray(frame_max, dtype=np.float64).ravel()
    ok = x[np.isfinite(x)]
    n, n_bad = x.size, x.size - ok.size
    n_flag = int(np.count_nonzero(ok > t)) + n_bad
    frac = n_flag / n if n else 0.0
    tt, allowed = _force_text(t), _percent(max_flagged_fraction)
    note = f"{_plural(n_bad, 'frame')} had non-finite σ_F (a committee member returned NaN or infinite forces), "
    note = note + "counted as flagged" if n_bad else ""
    status, reason = "trusted", ""
    if n < min_frames:
        status = "insufficient"
        reason = (
            f"only {_plural(n, 'frame')} audited"
            + (f" ({n_flag} flagged)" if n_flag else "")
            + f"; the verdict needs at least {min_frames}: audit a longer "
            "stretch of the trajectory or use a smaller frame stride"
        )
    elif frac > max_flagged_fraction:
        status = "extrapolating"
        reason = (
            f"the committee disagreed by more than {tt} eV/Å on {n_flag} of {n} audited frames "
            f"({_percent(frac)}, above the {allowed} allowed): there the model's expected force error is above the "
            "committee's target and its members disagree more than on their held-out data, so the run left the "
            "configurations the model describes reliably" + (f"; {note}" if note else "")
        )
    return {
        "status": status,
        "reason": reason,
        "criterion": f"at most {allowed} of audited frames with max σ_F > {tt} eV/Å "
        f"(at least {min_frames} frames audited)",
        "n_frames": n,
        "n_flagged": n_flag,
        "frac_flagged": frac,
        "threshold_eV_per_A": t,
        "sigma_F_max_p95": float(np.percentile(ok, 95.0)) if ok.size else None,
        "sigma_F_max_max": float(ok.max()) if ok.size else None,
        "n_nonfinite": n_bad,
        "note": note,
    }


def worst_frames(
    frame_max: np.ndarray, argmax_atom: np.ndarray, times_ps: np.ndarray, symbols: Sequence[str], n: int = 5
) -> list[dict[str, Any]]:
    """The ``n`` audited frames with the largest max σ_F, largest first (non-finite first of all; ties by frame).

    ``frame_max`` (eV/Å), ``argmax_atom`` and ``times_ps`` (ps) run over the audited frames
    (:func:`frame_disagreement`); ``symbols`` holds every atom's element.  Each entry is ``{"frame": audited-frame
    index, "time_ps", "sigma_F_max" (eV/Å), "atom", "element"}``.
    """
    x = np.asarray(frame_max, dtype=np.float64).ravel()
    atoms, times = np.asarray(argmax_atom).ravel(), np.asarray(times_ps, dtype=np.float64).ravel()
    if not x.size == atoms.size == times.size:
        raise ValueError(f"frame_max, argmax_atom and times_ps differ in length ({x.size}, {atoms.size}, {times.size})")
    order = np.argsort(-np.where(np.isfinite(x), x, np.inf), kind="stable")[: max(0, int(n))]
    return [
        {
            "frame": int(i),
            "time_ps": float(times[i]),
            "sigma_F_max": float(x[i]),
            "atom": int(atoms[i]),
            "element": str(symbols[int(atoms[i])]),
        }
        for i in order
    ]


# ----------------------------------------------------------------------------------------------------- calibration
def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(a, b)[0])
    return rho if np.isfinite(rho) else None


def calibrate_threshold(
    sigma_atoms: Sequence[np.ndarray],
    error_atoms: Sequence[np.ndarray],
    target_error_eV_per_A: float,
    *,
    min_configurations: int = 5,
    domain_quantile: float | None = 0.99,
) -> dict[str, Any]:
    """Threshold on the per-frame max σ_F from labelled held-out configurations (RMS α-scaling; module docstring).

    A frame is flagged when its max σ_F exceeds both ``target / α`` (the calibrated expected error of its most
    uncertain atom is above the target) and, with ``domain_quantile``, that quantile of the per-configuration max
    σ_F on the held-out configurations (the committee disagrees more than on the data it was calibrated on). The
    second condition matters for committees of small models, whose members disagree everywhere: their expected
    errors exceed a strict target on every configuration, including those like the training data, and a run would
    be called extrapolating where it has not left the training data; the first keeps an accurate committee from
    trusting errors above the target.

    Parameters
    ----------
    sigma_atoms, error_atoms : sequence of ndarray, each shape (N_c,)
        Per held-out configuration *c*: σ_F per atom, and the true force error norm ``||F_driver − F_ref||`` per
        atom of the model that drives MD; eV/Å.  Configurations may differ in size.
    target_error_eV_per_A : float
        Largest acceptable atomic force error, eV/Å.
    min_configurations : int, default 5
        Fewer configurations are refused.
    domain_quantile : float or None, default 0.99
        Quantile of the held-out per-configuration max σ_F below which a frame is never flagged (None: the
        error condition alone).

    Returns
    -------
    dict
        ``method`` (``"rms_scaling"``, or ``"rms_scaling+domain"`` when the domain quantile sets the threshold),
        ``scale`` (α), ``threshold_eV_per_A`` (the larger of ``error_threshold_eV_per_A`` = ``target / α`` and
        ``domain_threshold_eV_per_A``), ``domain_quantile``, ``spearman_atom``,
        ``spearman_frame``, ``recall`` and ``precision`` of the threshold at flagging configurations whose max true
        error exceeds the target (None when undefined), ``n_bad`` (such configurations), ``n_flagged``,
        ``sigma_rms_eV_per_A``, ``error_rms_eV_per_A``, ``n_configurations``, ``n_atoms``,
        ``target_error_eV_per_A``.
    """
    target, need = float(target_error_eV_per_A), max(2, int(min_configurations))
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target_error_eV_per_A must be a finite force above 0 eV/Å; got {target_error_eV_per_A}")
    if len(sigma_atoms) != len(error_atoms):
        raise ValueError(
            f"{len(sigma_atoms)} σ_F arrays but {len(error_atoms)} error arrays: pass one of each per configuration"
        )
    if len(sigma_atoms) < need:
        raise ValueError(
            f"only {len(sigma_atoms)} labelled configurations; calibration needs at least {need}: "
            "label more held-out configurations"
        )
    sig = [np.asarray(s, dtype=np.float64).ravel() for s in sigma_atoms]
    err = [np.asarray(e, dtype=np.float64).ravel() for e in error_atoms]
    for c, (s, e) in enumerate(zip(sig, err, strict=True)):
        if s.size != e.size or s.size == 0:
            raise ValueError(f"configuration {c} has {s.size} σ_F values and {e.size} errors: pass one per atom")
        if not (np.isfinite(s).all() and np.isfinite(e).all()) or s.min() < 0 or e.min() < 0:
            raise ValueError(f"configuration {c} has negative or non-finite σ_F or errors: drop or relabel it")
    s_all, e_all = np.concatenate(sig), np.concatenate(err)
    ms, me = float(np.mean(s_all**2)), float(np.mean(e_all**2))
    if ms == 0.0:
        raise ValueError("σ_F is zero on every held-out atom (identical members): retrain with different seeds/splits")
    if me == 0.0:
        raise ValueError("the force error is zero on every held-out atom: label with the reference, not the driver")
    alpha = float(np.sqrt(me / ms))
    s_max, e_max = np.array([s.max() for s in sig]), np.array([e.max() for e in err])
    if domain_quantile is not None and not 0.0 < domain_quantile <= 1.0:
        raise ValueError(f"domain_quantile must lie in (0, 1]; got {domain_quantile}")
    error_thr = target / alpha
    domain_thr = float(np.quantile(s_max, domain_quantile)) if domain_quantile is not None else None
    thr = max(error_thr, domain_thr or 0.0)
    flagged, bad = s_max > thr, e_max > target
    tp, n_bad, n_flag = int(np.sum(flagged & bad)), int(bad.sum()), int(flagged.sum())
    return {
        "method": "rms_scaling+domain" if thr > error_thr else "rms_scaling",
        "scale": alpha,
        "threshold_eV_per_A": thr,
        "error_threshold_eV_per_A": error_thr,
        "domain_threshold_eV_per_A": domain_thr,
        "domain_quantile": domain_quantile,
        "target_error_eV_per_A": target,
        "spearman_atom": _spearman(s_all, e_all),
        "spearman_frame": _spearman(s_max, e_max),
        "recall": tp / n_bad if n_bad else None,
        "precision": tp / n_flag if n_flag else None,
        "n_bad": n_bad,
        "n_flagged": n_flag,
        "sigma_rms_eV_per_A": float(np.sqrt(ms)),
        "error_rms_eV_per_A": float(np.sqrt(me)),
        "n_configurations": len(sig),
        "n_atoms": int(s_all.size),
    }


# ------------------------------------------------------------------------------------------------------- selection
def structure_fingerprint(
    positions: np.ndarray, cell: np.ndarray, symbols: Sequence[str], *, r_max: float = 6.0, n_bins: int = 24
) -> np.ndarray:
    """Cheap descriptor of one periodic configuration for de-duplication: smoothed element-pair distance histograms.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Cartesian positions, Å (wrapped or not).
    cell : ndarray, shape (3, 3) or (3,)
        Lattice vectors as rows (or orthorhombic lengths), Å.
    symbols : sequence of str, length N
        Chemical symbols.
    r_max : float, default 6.0
        Range, Å; at most half the smallest perpendicular cell width.
    n_bins : int, default 24
        Bins of width ``Δr = r_max / n_bins`` per element pair.

    Returns
    -------
    ndarray, shape (n_pairs · n_bins,)
        For every element pair ``(a, b)``, ``a <= b`` in sorted symbol order, ``sqrt(h_ab(R) / N)`` at the bin
        centres R: ``h_ab`` counts each minimum-image a–b pair once, spread over the bins by a Gaussian of width
        Δr and tapered to zero over the last 2 Δr (so a small displacement moves the fingerprint a little).  Per
        atom, square-rooted so every bin weighs by its count noise (Poisson counts have a constant-variance square
        root) and rare pairs neither dominate nor vanish.  Invariant to translation, rotation, permutation and
        replication of the cell; fingerprints of one composition are comparable.
    """
    pos = np.asarray(positions, dtype=np.float64)
    sym = np.asarray([str(s) for s in symbols])
    if pos.ndim != 2 or pos.shape[1] != 3 or sym.size != pos.shape[0] or sym.size == 0:
        raise ValueError(f"positions must be (N, 3) with one symbol per atom; got {pos.shape} and {sym.size} symbols")
    h, r_max, n_bins = as_cells(cell), float(r_max), int(n_bins)
    if h.ndim != 2 or n_bins < 1:
        raise ValueError("structure_fingerprint takes one (3, 3) cell and n_bins >= 1")
    if r_max > max_cutoff(h) * (1.0 + 1e-12):
        raise ValueError(f"r_max={r_max:g} Å exceeds half the smallest cell width: pass r_max <= {max_cutoff(h):.3g}")
    elements = sorted(set(sym.tolist()))
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    groups = {e: np.flatnonzero(sym == e) for e in elements}
    n_fine, dr = _FINE * n_bins, r_max / n_bins
    counts = pair_rdfs(pos[None], h, groups, pairs, r_max, n_fine, method="dense")  # like pairs counted twice
    r = (np.arange(n_fine) + 0.5) * (r_max / n_fine)
    kernel = np.exp(-0.5 * ((r[:, None] - (np.arange(n_bins) + 0.5) * dr) / dr) ** 2)
    r0 = max(r_max - 2.0 * dr, 0.0)
    taper = 0.5 * (1.0 + np.cos(np.pi * np.clip((r - r0) / (r_max - r0), 0.0, 1.0)))
    kernel *= (taper / kernel.sum(axis=1))[:, None]  # each pair spreads weight taper(r) over the bins
    h_ab = [counts[(a, b)].counts / (2.0 if a == b else 1.0) @ kernel for a, b in pairs]
    return np.sqrt(np.concatenate(h_ab) / sym.size)


def select_diverse(
    fingerprints: np.ndarray,
    scores: np.ndarray,
    n: int,
    *,
    threshold: float | None = None,
    min_distance: float = 0.0,
) -> np.ndarray:
    """Indices of up to ``n`` uncertain, mutually distinct configurations to label (greedy farthest point).

    Parameters
    ----------
    fingerprints : ndarray, shape (M, D)
        One descriptor per candidate (:func:`structure_fingerprint`).
    scores : ndarray, shape (M,)
        Uncertainty of each candidate, e.g. max σ_F (eV/Å); NaN/inf ranks as the most uncertain.
    n : int
        Most configurations to return.
    threshold : float, optional
        Only candidates scoring above it are considered.
    min_distance : float, default 0.0
        Candidates closer than this (Euclidean, fingerprint units) to a selected one are near-duplicates, skipped.

    Returns
    -------
    ndarray of int
        Candidate indices in selection order: the highest score first, then each the farthest from all selected
        (ties: higher score, then lower index).  Deterministic.
    """
    fp = np.asarray(fingerprints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).ravel()
    if fp.ndim != 2 or fp.shape[0] != sc.size or not np.isfinite(fp).all():
        raise ValueError(f"fingerprints must be finite, (M, D), one row per score; got {fp.shape} and {sc.size}")
    key = np.where(np.isfinite(sc), sc, np.inf)
    cand = np.flatnonzero(key > threshold) if threshold is not None else np.arange(sc.size)
    cand = cand[np.argsort(-key[cand], kind="stable")]  # by score: argmax then breaks distance ties by score
    pts = fp[cand]
    chosen: list[int] = []
    dmin, alive = np.full(cand.size, np.inf), np.ones(cand.size, dtype=bool)
    while len(chosen) < int(n) and alive.any():
        j = int(np.argmax(np.where(alive, dmin, -1.0)))
        chosen.append(int(cand[j]))
        np.minimum(dmin, np.linalg.norm(pts - pts[j], axis=1), out=dmin)
        alive &= dmin >= min_distance
        alive[j] = False
    return np.asarray(chosen, dtype=np.intp)
