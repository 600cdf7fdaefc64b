"""Ion pairing: free/SSIP, contact ion pairs and aggregates, cation–cation dimers, ionic cluster sizes.

Pure numpy/scipy.  Positions in Å ``(n_frames, n_atoms, 3)`` (wrapped or unwrapped: all distances are periodic
minimum-image distances), cells ``(n_frames, 3, 3)`` or ``(3, 3)`` with lattice vectors as rows.

Classification of an ion in one frame, by the number ``n`` of counter-ions within the first-shell cutoff
(the first minimum of the cation–anion RDF):

* ``free`` (free ion or solvent-separated ion pair, SSIP): ``n = 0``;
* ``cip`` (contact ion pair): ``n = 1``;
* ``agg`` (aggregate): ``n >= 2``.

The cation–cation "dimer" fraction is the fraction of cations with at least one other cation within
``cutoff_cation_cation`` (e.g. bridged Li⁺···Li⁺ pairs in concentrated LiCl discussed in NNP studies).

Sampling (Verdict): the fractions are equilibrium averages only if contacts form and break during the run.
A contact event is a change of the contact state of one cation–anion pair between frames, with hysteresis so
that rattling across the cutoff is not counted: a contact forms when the distance drops below the cutoff and
breaks when it exceeds ``cutoff + event_buffer_A``.  ``converged`` needs at least
``ConvergenceTargets.pairing_min_events`` events (formations + breakings, summed over cations); fewer is
``unconverged``; without cations or anions the fractions are ``insufficient`` (:func:`pairing_verdict`).

The cutoff must be the first minimum of a *resolved* cation–anion shell
(:func:`electrodb.analysis.shells.shell_resolution_verdict`): without one, "contact" has no meaning and the
fractions are ``insufficient`` whatever cutoff was used (:func:`contact_shell_verdict`; seen: an 8.1 Å "minimum"
of a shell the structure verdict had rejected gave AGG 0.91 "converged" in an ideal gas, which has no pairing).

Errors and sampling (:func:`pairing_sampling`): the per-frame fractions are time series; each goes through
:func:`electrodb.analysis.sampling.analyse_series` (statistical inefficiency, ``n_eff``, Student-t error, halves
test), and every cation class must pass :func:`~electrodb.analysis.sampling.sampling_problems` (at least
``min_n_eff`` independent samples, no drift, not constant: a class that never occurred has no error bar).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from electrodb.analysis.convergence import ConvergenceTargets, Status, Verdict, combine_run_factors, worst
from electrodb.analysis.periodic import as_cells, frame_chunk, frame_distances, is_orthorhombic
from electrodb.analysis.run_factor import count_factor, series_factor
from electrodb.analysis.sampling import SeriesReport, analyse_series, sampling_problems
from electrodb.analysis.statistics import block_mean_error

__all__ = [
    "PairingResult",
    "PairingSampling",
    "contact_shell_verdict",
    "fallback_cutoff_verdict",
    "ion_pairing",
    "pairing_sampling",
    "pairing_verdict",
]

_CLASSES = ("free", "cip", "agg")


@dataclass
class PairingResult:
    """Ion-pairing statistics averaged over frames (uncertainties: standard errors from block averages).

    Attributes
    ----------
    cation_fractions, anion_fractions : dict[str, float]
        Fractions of cations (anions) that are ``'free'`` (free/SSIP, no counter-ion within the cutoff),
        ``'cip'`` (exactly one) or ``'agg'`` (two or more); they sum to 1.
    cation_fraction_errors, anion_fraction_errors : dict[str, float | None]
        Block standard errors of the fractions (None when the run is too short for the blocks).
    cation_coordination, anion_coordination : float
        Mean number of counter-ions within ``cutoff_cation_anion`` per cation (per anion).
    cation_cation_fraction : float or None
        Fraction of cations with another cation within ``cutoff_cation_cation`` (None when no cutoff given).
    cation_cation_fraction_error : float or None
    cluster_size_distribution : dict[int, float]
        Fraction of all ions (cations + anions) that belong to a cation–anion cluster of the given size
        (connected components of the graph with an edge for each cation–anion distance < cutoff); size 1 =
        unpaired ion.  Sums to 1.
    cutoff_cation_anion, cutoff_cation_cation : float, Å
    n_frames, n_blocks, n_cations, n_anions : int
    cation_timeseries, anion_timeseries : (n_frames, 3) arrays
        Per-frame fractions in the order free, cip, agg.
    cation_cation_timeseries : (n_frames,) array or None
    n_contact_events : int
        Cation–anion contact formations + breakings over the run (with the hysteresis ``event_buffer_A``).
    contact_events_per_cation : (n_cations,) int array
        The same, per cation.
    event_buffer_A : float, Å
    status, criterion, reason : str
        Verdict of the fractions (see :func:`pairing_verdict`).
    run_factor : float or None
        How much longer the run must be for it to pass (:class:`~electrodb.analysis.convergence.Verdict`).
    """

    cation_fractions: dict[str, float]
    cation_fraction_errors: dict[str, float | None]
    anion_fractions: dict[str, float]
    anion_fraction_errors: dict[str, float | None]
    cation_coordination: float
    anion_coordination: float
    cation_cation_fraction: float | None
    cation_cation_fraction_error: float | None
    cluster_size_distribution: dict[int, float]
    cutoff_cation_anion: float
    cutoff_cation_cation: float | None
    n_frames: int
    n_blocks: int
    n_cations: int
    n_anions: int
    cation_timeseries: np.ndarray = field(repr=False)
    anion_timeseries: np.ndarray = field(repr=False)
    cation_cation_timeseries: np.ndarray | None = field(default=None, repr=False)
    n_contact_events: int = 0
    contact_events_per_cation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    event_buffer_A: float = 0.0
    status: Status = "insufficient"
    criterion: str = ""
    reason: str = ""
    run_factor: float | None = None

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.status, self.criterion, self.reason, self.run_factor)


def pairing_verdict(n_events: int, n_cations: int, n_anions: int, targets: ConvergenceTargets | None = None) -> Verdict:
    """Verdict of pairing fractions from the number of contact formation/breaking events.

    ``insufficient`` without cations or anions (no cation–anion pair possible; ``run_factor`` inf); ``unconverged``
    with fewer than ``targets.pairing_min_events`` events (``run_factor`` target / events, events ∝ T, none read
    as one); else ``converged``.
    """
    t = targets or ConvergenceTargets()
    crit = f"ion–ion contact formation + breaking events >= {t.pairing_min_events}"
    if n_cations == 0 or n_anions == 0:
        why = f"no cation–anion pairs ({n_cations} cations, {n_anions} anions)"
        return Verdict("insufficient", crit, why, float("inf"))
    if n_events < t.pairing_min_events:
        why = f"{n_events} contact events < {t.pairing_min_events}"
        return Verdict("unconverged", crit, why, count_factor(t.pairing_min_events, n_events))
    return Verdict("converged", crit)


def fallback_cutoff_verdict(verdict: Verdict, fallback_A: float | None) -> Verdict:
    """``verdict``, made at best ``unconverged`` when the first-shell cutoff was a fallback value (Å).

    Used for pairing fractions and residence times whose cutoff should be the first minimum of a g(r) that had
    none; ``fallback_A=None`` (the cutoff is a first minimum) returns ``verdict`` unchanged.
    """
    if fallback_A is None:
        return verdict
    return worst(
        verdict,
        Verdict(
            "unconverged",
            "first-shell cutoff at the first minimum of g(r)",
            f"no first minimum; fallback cutoff {fallback_A:g} Å",
        ),
    )


def contact_shell_verdict(resolution: Verdict, fallback_A: float | None = None) -> Verdict:
    """``insufficient`` unless the cation–anion first shell is resolved (``resolution`` converged).

    Parameters
    ----------
    resolution : Verdict
        :func:`electrodb.analysis.shells.shell_resolution_verdict` of the cation–anion first shell.
    fallback_A : float, optional
        The cutoff (Å) used instead, when fractions were still computed for inspection.
    """
    crit = "contact cutoff at the first minimum of a resolved cation–anion first shell"
    if resolution.converged:
        return Verdict("converged", crit)
    kept = f"; fractions at the fallback cutoff {fallback_A:g} Å are kept for inspection only" if fallback_A else ""
    return Verdict(
        "insufficient",
        crit,
        f"the cation–anion first shell is not resolved ({resolution.reason}): contact pairs have no cutoff{kept}",
        resolution.run_factor,
    )


@dataclass
class PairingSampling:
    """Time-series analysis of the pairing fractions (:func:`pairing_sampling`).

    Attributes
    ----------
    cation, anion : dict[str, SeriesReport]
        Report of each class series (``free``, ``cip``, ``agg``): mean, Student-t error, ``n_eff``.
    n_eff : float
        Smallest ``n_eff`` of the cation classes.
    verdict : Verdict
        Worst of the contact-event verdict and the sampling problems of the cation classes.
    """

    cation: dict[str, SeriesReport]
    anion: dict[str, SeriesReport]
    n_eff: float
    verdict: Verdict


def pairing_sampling(result: PairingResult, targets: ConvergenceTargets | None = None) -> PairingSampling:
    """Student-t errors, ``n_eff`` and the sampling verdict of the per-frame fractions of ``result``.

    The frames of ``result`` are taken as production (cut the equilibration before :func:`ion_pairing`).
    """
    t = targets or ConvergenceTargets()
    cation = {k: analyse_series(result.cation_timeseries[:, i], detect_start=False) for i, k in enumerate(_CLASSES)}
    anion = {k: analyse_series(result.anion_timeseries[:, i], detect_start=False) for i, k in enumerate(_CLASSES)}
    problems = [
        p
        for k, rep in cation.items()
        for p in sampling_problems(rep, t.min_n_eff, t.stationarity_sigma, f"the cation {k.upper()} fraction")
    ]
    crit = (
        f">= {t.min_n_eff:g} independent samples of every cation fraction, halves within {t.stationarity_sigma:g} sigma"
    )
    factor = combine_run_factors(*(series_factor(rep, t.min_n_eff) for rep in cation.values()))
    sampled = Verdict("unconverged", crit, "; ".join(problems), factor) if problems else Verdict("converged", crit)
    return PairingSampling(
        cation=cation,
        anion=anion,
        n_eff=float(min(rep.n_eff for rep in cation.values())),
        verdict=worst(result.verdict, sampled),
    )


def _class_fractions(counts: np.ndarray) -> np.ndarray:
    """(F, n) counter-ion counts -> (F, 3) fractions free/cip/agg."""
    n = counts.shape[1]
    return np.stack([(counts == 0).sum(1), (counts == 1).sum(1), (counts >= 2).sum(1)], axis=1) / n


def _cluster_size_counts(adj: np.ndarray) -> np.ndarray:
    """Histogram (index = cluster size) of ions over cluster sizes, for a chunk of frames.

    ``adj`` is the (F, n_c, n_a) boolean cation–anion adjacency; the frames are treated as one block-diagonal
    graph so that a single ``connected_components`` call handles the whole chunk.
    """
    n_f, n_c, n_a = adj.shape
    n_nodes = n_c + n_a
    f, i, j = np.nonzero(adj)
    rows = f * n_nodes + i
    cols = f * n_nodes + n_c + j
    g = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_f * n_nodes,) * 2)
    _, labels = connected_components(g, directed=False)
    sizes = np.bincount(labels)
    return np.bincount(sizes[labels])  # number of ions (nodes) per cluster size


def ion_pairing(
    positions: np.ndarray,
    cells: np.ndarray,
    cations: np.ndarray,
    anions: np.ndarray,
    cutoff_cation_anion: float,
    cutoff_cation_cation: float | None = None,
    n_blocks: int = 5,
    *,
    event_buffer_A: float = 0.3,
    targets: ConvergenceTargets | None = None,
) -> PairingResult:
    """Classify ions as free/SSIP, CIP or AGG in every frame and average, with block uncertainties.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å (wrapped or unwrapped).
    cells : (n_frames, 3, 3) or (3, 3) array, Å, lattice vectors as rows (orthorhombic or triclinic).
    cations, anions : int index arrays
        Atom indices of the cations and of the anions (one site per ion, e.g. Li and Cl).
    cutoff_cation_anion : float, Å
        First-shell cation–anion cutoff (first minimum of g_{+-}(r)); distance ``< cutoff`` counts as bound.
    cutoff_cation_cation : float, Å, optional
        Cation–cation cutoff for the dimer fraction; None skips it.
    n_blocks : int
        Number of contiguous time blocks for the standard errors.
    event_buffer_A : float, Å
        Hysteresis for counting contact events: a contact breaks only beyond ``cutoff + event_buffer_A``
        (0 counts every crossing of the cutoff).
    targets : ConvergenceTargets, optional
        For the Verdict (``pairing_min_events``); defaults to ``ConvergenceTargets()``.

    Returns
    -------
    PairingResult
    """
    x = np.asarray(positions)
    n_frames = x.shape[0]
    cat = np.asarray(cations, dtype=np.intp)
    an = np.asarray(anions, dtype=np.intp)
    if len(cat) == 0 or len(an) == 0:
        raise ValueError("need at least one cation and one anion")
    H = as_cells(cells, n_frames)
    tric = not is_orthorhombic(H)
    n_pairs = len(cat) * max(len(an), len(cat))
    chunk = frame_chunk(n_frames, n_pairs, tric)
    cat_ts = np.empty((n_frames, 3))
    an_ts = np.empty((n_frames, 3))
    cat_cn = np.empty(n_frames)
    an_cn = np.empty(n_frames)
    dimer_ts = np.empty(n_frames) if cutoff_cation_cation is not None else None
    size_counts = np.zeros(len(cat) + len(an) + 1, dtype=np.int64)
    events = np.zeros(len(cat), dtype=np.int64)
    state: np.ndarray | None = None  # hysteretic contact state of each cation–anion pair
    for f0 in range(0, n_frames, chunk):
        f1 = min(n_frames, f0 + chunk)
        xc = x[f0:f1, cat]
        dca = frame_distances(xc, x[f0:f1, an], H[f0:f1])
        adj = dca < cutoff_cation_anion
        far = dca > cutoff_cation_anion + event_buffer_A
        for k in range(f1 - f0):
            if state is None:
                state = adj[k].copy()
                continue
            formed = ~state & adj[k]
            broken = state & far[k]
            events += formed.sum(axis=1) + broken.sum(axis=1)
            state = (state | formed) & ~broken
        n_per_cat = adj.sum(axis=2)
        n_per_an = adj.sum(axis=1)
        cat_ts[f0:f1] = _class_fractions(n_per_cat)
        an_ts[f0:f1] = _class_fractions(n_per_an)
        cat_cn[f0:f1] = n_per_cat.mean(axis=1)
        an_cn[f0:f1] = n_per_an.mean(axis=1)
        hist = _cluster_size_counts(adj)
        size_counts[: len(hist)] += hist
        if dimer_ts is not None:
            dcc = frame_distances(xc, xc, H[f0:f1])
            idx = np.arange(len(cat))
            dcc[:, idx, idx] = np.inf
            dimer_ts[f0:f1] = (dcc < cutoff_cation_cation).any(axis=2).mean(axis=1)
    cat_mean, cat_err = block_mean_error(cat_ts, n_blocks)
    an_mean, an_err = block_mean_error(an_ts, n_blocks)

    def as_dict(v: np.ndarray | None) -> dict:
        return {k: (None if v is None else float(v[i])) for i, k in enumerate(_CLASSES)}

    dimer, dimer_err = (None, None)
    if dimer_ts is not None:
        dm, de = block_mean_error(dimer_ts, n_blocks)
        dimer, dimer_err = float(dm), (None if de is None else float(de))
    n_events = int(events.sum())
    verdict = pairing_verdict(n_events, len(cat), len(an), targets)
    total = size_counts.sum()
    csd = {int(s): float(c / total) for s, c in enumerate(size_counts) if c > 0}
    return PairingResult(
        cation_fractions=as_dict(cat_mean),
        cation_fraction_errors=as_dict(cat_err),
        anion_fractions=as_dict(an_mean),
        anion_fraction_errors=as_dict(an_err),
        cation_coordination=float(cat_cn.mean()),
        anion_coordination=float(an_cn.mean()),
        cation_cation_fraction=dimer,
        cation_cation_fraction_error=dimer_err,
        cluster_size_distribution=csd,
        cutoff_cation_anion=float(cutoff_cation_anion),
        cutoff_cation_cation=None if cutoff_cation_cation is None else float(cutoff_cation_cation),
        n_frames=n_frames,
        n_blocks=n_blocks,
        n_cations=len(cat),
        n_anions=len(an),
        cation_timeseries=cat_ts,
        anion_timeseries=an_ts,
        cation_cation_timeseries=dimer_ts,
        n_contact_events=n_events,
        contact_events_per_cation=events,
        event_buffer_A=float(event_buffer_A),
        status=verdict.status,
        criterion=verdict.criterion,
        reason=verdict.reason,
        run_factor=verdict.run_factor,
    )
