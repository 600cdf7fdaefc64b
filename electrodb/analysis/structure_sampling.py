r"""Structure of a run with error bars you can bet on: equilibration cut, N_eff, shell exchange and a_cc per block.

Pure numpy/scipy, no I/O.  Lengths in Å, times in ps; positions ``(n_frames, n_atoms, 3)``, cells as rows.

What goes wrong without it
--------------------------
A g(r) averaged over frames is one number per bin, and the error of a coordination number or an a_cc taken from
five time blocks of it says how much the blocks differ, not how much the run knows.  Measured on ideal gases
(every g = 1, a_cc = 1, no ion–ion shell): the first 30 frames of a lattice start gave a_cc = 1.88 ± 0.06 and
CN(Na–Cl) = 0.515 ± 0.015, both "converged"; 30 frames of an equilibrated ideal gas a_cc = 1.406 ± 0.013; a
static structure with 0.05 Å noise, labelled 1 ps per frame, CN(Na–O) = 8.00 ± 0.00.  Frames are not samples, a
transient is not the equilibrium, and a shell that never exchanged a member has not sampled its coordination
number.

What :func:`analyse_structure` does
-----------------------------------
1. **A time series of g(r).**  The frames are histogrammed in up to ``max_series`` (200) contiguous short blocks
   (:func:`~electrodb.analysis.structure.pair_rdfs`; one block per frame for short runs).
2. **Series.**  For every pair whose g(r) over the whole run shows a first shell, the coordination number at its
   first minimum per block (:func:`~electrodb.analysis.structure.block_coordination`); with ``kb_pairs``, the
   linearised a_cc per block (:func:`~electrodb.analysis.kb_series.acc_block_series`).
3. **One equilibration cut for the whole structure.**  Each series gets its Chodera cut
   (:func:`~electrodb.analysis.sampling.analyse_series`), kept only if the part it removes differs from the rest
   by more than ``stationarity_sigma`` combined errors (:func:`significant_cut`); the structure keeps the frames
   after the *latest* of them, so every stored g(r), CN and a_cc comes from the same frames and no transient is
   averaged in.
4. **Production.**  The blocks after the cut are regrouped into ``n_blocks`` blocks
   (:func:`~electrodb.analysis.structure.regroup_blocks`): the stored g(r), its errors, the first shell
   (:func:`~electrodb.analysis.shells.shell_analysis`) and the CN come from them.  The CN's error, ``n_eff`` and
   stationarity come from its block series after the cut (Student-t error, :mod:`electrodb.analysis.sampling`);
   so do a_cc's.
5. **Shell exchange.**  For a resolved shell, members entering and leaving it over the production frames are
   counted with a hysteresis of ``exchange_buffer_A``
   (:func:`~electrodb.analysis.kinetics.shell_exchange`, at most ``exchange_max_centres`` centres).

Verdict of a shell (the worst of):

* resolution (:func:`~electrodb.analysis.shells.shell_resolution_verdict`): a first peak, a first minimum, a
  width of at most ``shell_max_width_A``, and an excluded core before the peak
  (:func:`~electrodb.analysis.shell_sampling.excluded_core`; an ideal gas has none, and without this test 7–17 % of 40
  equilibrated ideal gases had a noise bump accepted as a "converged" first shell of some ion pair);
* CN standard error (series, Student-t) at most ``cn_max_err``;
* centres × production time at least ``cn_min_centre_ps``
  (:func:`~electrodb.analysis.shells.shell_sampling_verdict`);
* at least ``cn_min_exchange_events`` exchange events and ``cn_min_turnovers`` turnovers per shell member, else
  ``insufficient`` (:func:`~electrodb.analysis.shell_sampling.shell_exchange_verdict`);
* at least ``min_n_eff`` independent samples, halves within ``stationarity_sigma``, an error that is not exactly
  zero, else ``unconverged`` (:func:`~electrodb.analysis.sampling.sampling_problems`).
* after a cut transient (``t_equil_ps`` > 0), the slower of the centres and partners moved far enough over the
  production frames to span ``transient_min_relaxations`` relaxation times of the box's slowest density wave,
  else ``unconverged`` (:func:`~electrodb.analysis.shell_sampling.relaxation_verdict`: a tail slower than the
  run looks flat after the cut).

The number of blocks caps ``n_eff``: with 200 blocks a run can show at most 200 independent samples, which is
far above the targets.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> pos = rng.uniform(0, 20.0, (60, 40, 3))            # an ideal gas, independent frames
>>> out = analyse_structure(pos, np.eye(3) * 20.0, np.arange(60) * 0.1,
...                         {"a": np.arange(20), "b": np.arange(20, 40)}, [("a", "b")], 9.0, 450)
>>> out.shells[("a", "b")].verdict.status            # no first shell in an ideal gas
'insufficient'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, worst
from electrodb.analysis.kb_series import (
    KB_KEYS,
    AccSeries,
    acc_block_series,
    acc_sampling_verdict,
    acc_travel_verdict,
)
from electrodb.analysis.kinetics import ShellExchange, shell_exchange
from electrodb.analysis.periodic import as_cells, smallest_widths
from electrodb.analysis.sampling import SeriesReport, analyse_series, student_t_dof_factor
from electrodb.analysis.shell_peak import PeakSampling, shell_peak
from electrodb.analysis.shell_sampling import (
    cn_sampling_verdict,
    excluded_core,
    relaxation_verdict,
    rms_travel,
    shell_exchange_verdict,
)
from electrodb.analysis.shells import (
    ShellAnalysis,
    shell_analysis,
    shell_resolution_verdict,
    shell_sampling_verdict,
)
from electrodb.analysis.structure import RDFResult, block_coordination, pair_rdfs, regroup_blocks

__all__ = ["AccSampling", "ShellSampling", "StructureSampling", "analyse_structure", "significant_cut"]

Pair = tuple[str, str]

#: Most time blocks of the g(r) series (memory: blocks × pairs × bins × 16 bytes).
MAX_SERIES = 200
#: Hysteresis of the exchange count (Å): a member leaves only beyond the first minimum + this.
EXCHANGE_BUFFER_A = 0.3
#: Most centres whose shells are followed for the exchange count.
EXCHANGE_MAX_CENTRES = 64


@dataclass
class ShellSampling:
    """First shell of one pair over the production frames, with its sampling record and verdict.

    Attributes
    ----------
    shell : ShellAnalysis
        Peak, minimum and CN from the production g(r); ``cn_err`` is the Student-t error of the CN series and
        ``status``/``criterion``/``reason`` the full verdict below.
    report : SeriesReport or None
        The CN block series after the cut (None without a first minimum).
    exchange : ShellExchange or None
        Exchange events over the production frames (None when the shell is not resolved).
    resolution : Verdict
        Whether the shell is resolved (:func:`~electrodb.analysis.shells.shell_resolution_verdict`); only a
        resolved shell's minimum may serve as a cutoff.
    verdict : Verdict
        The worst of resolution, CN error, centre time, exchange and sampling: the verdict of the CN.
    peak : PeakSampling or None
        The first-peak position with its own series and verdict (:mod:`electrodb.analysis.shell_peak`): it needs
        no exchange, only a resolved shell, a stationary series with ``min_n_eff`` samples and an error within
        ``r_max_err_A``, and centres that moved ``r_min_travel_A``.
    """

    shell: ShellAnalysis
    report: SeriesReport | None
    exchange: ShellExchange | None
    resolution: Verdict
    verdict: Verdict
    peak: PeakSampling | None = None


@dataclass
class AccSampling:
    """a_cc of the production frames (:mod:`electrodb.analysis.kb_series`) with its series report.

    ``a_cc`` is None when it could not be computed (``error`` says why); ``rms_displacement_A`` is the ions'
    root-mean-square displacement over the production frames (positions must be unwrapped); ``verdict`` is the
    worst of the series' sampling and that travel (:mod:`electrodb.analysis.kb_series`), to be combined with
    :func:`~electrodb.analysis.kirkwood_buff.acc_verdict`.
    """

    a_cc: float | None
    a_cc_err: float | None
    report: SeriesReport | None
    series: AccSeries | None
    verdict: Verdict
    error: str = ""
    rms_displacement_A: float | None = None


@dataclass
class StructureSampling:
    """What :func:`analyse_structure` returns.

    Attributes
    ----------
    rdfs : dict[(a, b), RDFResult]
        Production g(r) (frames from ``t0_frame``), in ``n_blocks`` blocks.
    shells : dict[(a, b), ShellSampling]
    t0_frame : int
        First production frame.
    t_equil_ps : float
        Time cut as equilibration, ps.
    cuts_ps : dict[str, float]
        Each series' own cut (ps), by series name; the latest sets ``t_equil_ps``.
    n_series : int
        Time blocks of the series (before the cut).
    acc : AccSampling or None
        a_cc, when ``kb_pairs`` were given.
    series_rdfs : dict[(a, b), RDFResult]
        The g(r) series itself (``n_series`` blocks over the whole run, before the cut), e.g. for the CN series
        at another radius: ``block_coordination(series_rdfs[pair], r)[start_block:]``.
    start_block : int
        First block of ``series_rdfs`` after the cut.
    """

    rdfs: dict[Pair, RDFResult]
    shells: dict[Pair, ShellSampling]
    t0_frame: int
    t_equil_ps: float
    cuts_ps: dict[str, float] = field(default_factory=dict)
    n_series: int = 0
    acc: AccSampling | None = None
    series_rdfs: dict[Pair, RDFResult] = field(default_factory=dict)
    start_block: int = 0


def significant_cut(x: np.ndarray, sigma: float = 3.0) -> int:
    """The Chodera cut of ``x`` (:func:`~electrodb.analysis.sampling.analyse_series`), kept only when what it cuts
    differs from what it keeps.

    The mean of the part before the cut must differ from the production mean by more than ``sigma`` times what
    equilibrium would allow: the scatter of the mean of a stretch that long, :math:`s\\sqrt{\\min(g/n, 1)}`
    with the production part's spread s and inefficiency g (Student-t on its degrees of freedom), combined with
    the production mean's error; otherwise 0. On a stationary series with long-tailed correlations (anything
    diffusive) the cut otherwise removes an ordinary excursion and keeps a stretch whose autocorrelation happens
    to look short: on equilibrated ideal gases it raised the z spread of a_cc from 1.06 to 1.16 (60 runs of 1600
    frames), and once cut a 42-sample excursion to leave a "converged" a_cc 5.2 errors from the truth. A real
    transient (a lattice start) differs by far more. The scale is that of the production part, not the cut
    part's own error: a transient is not a stationary series, and its own g and degrees of freedom (a ramp of
    25 samples "holds" one independent sample) made its error so large that ramps 8 standard deviations high
    went undetected. Measured: ramps of 3–8 standard deviations over 30 of 200 samples cut in 100 of 100 series
    (the cut part's own error: 93–96 %), moving averages of 30 white samples (a correlated excursion, not a
    transient) cut in 5.5 % of 200 (12 %), the ideal-gas CN series of ``benchmarks/coverage_structure.py`` in
    0.5–1.8 % (1.3–4.3 %).

    Returns
    -------
    int
        First production sample (0: nothing cut).
    """
    x = np.asarray(x, dtype=float)
    rep = analyse_series(x)
    if rep.t0 == 0:
        return 0
    pre = x[: rep.t0]
    stretch = rep.std * np.sqrt(min(rep.g / pre.size, 1.0)) * student_t_dof_factor(rep.t_samples - 1.0)
    scale = float(np.hypot(stretch, rep.err))
    diff = abs(float(pre.mean()) - rep.mean)
    if scale == 0.0:
        return rep.t0 if diff > 0 else 0
    return rep.t0 if diff / scale > sigma else 0


def _kb_blocks(fine: Mapping[Pair, RDFResult], kb_pairs: Mapping[str, Pair], start: int) -> dict[str, np.ndarray]:
    out = {}
    for key in KB_KEYS:
        g = fine[kb_pairs[key]].g_blocks
        assert g is not None
        out[key] = g[start:]
    return out


def _acc_series(
    fine: Mapping[Pair, RDFResult],
    kb_pairs: Mapping[str, Pair],
    groups: Mapping[str, np.ndarray],
    start: int,
) -> AccSeries:
    first = fine[kb_pairs["pp"]]
    n_partners = {k: float(len(groups[kb_pairs[k][1]])) for k in KB_KEYS}
    weights = None if first.block_frames is None else first.block_frames[start:]
    return acc_block_series(
        first.r,
        _kb_blocks(fine, kb_pairs, start),
        n_partners,
        float(len(groups[kb_pairs["pp"][0]])),
        float(len(groups[kb_pairs["mm"][0]])),
        first.mean_volume,
        weights,
    )


def _production_acc(
    fine: Mapping[Pair, RDFResult],
    kb_pairs: Mapping[str, Pair],
    start: int,
    ctx: dict,
    whole: AccSeries | None,
) -> AccSampling:
    targets: ConvergenceTargets = ctx["targets"]
    groups = ctx["groups"]
    try:
        acc = whole if start == 0 and whole is not None else _acc_series(fine, kb_pairs, groups, start)
    except (ValueError, KeyError) as exc:
        return AccSampling(None, None, None, None, acc_sampling_verdict(None, targets), error=str(exc))
    report = analyse_series(acc.series, detect_start=False)
    ions = np.concatenate([groups[kb_pairs["pp"][0]], groups[kb_pairs["mm"][0]]])
    x = ctx["positions"]
    rms = rms_travel(x[ctx["t0_frame"], ions], x[-1, ions])
    kb_range = float(fine[kb_pairs["pp"]].r[-1])
    travel = acc_travel_verdict(rms, kb_range, x.shape[0] - ctx["t0_frame"], targets)
    verdict = worst(acc_sampling_verdict(report, targets), travel)
    return AccSampling(acc.a_cc, report.err, report, acc, verdict, rms_displacement_A=rms)


def _shell(
    pair: Pair,
    fine: RDFResult,
    prod: RDFResult,
    start: int,
    ctx: dict,
) -> ShellSampling:
    targets: ConvergenceTargets = ctx["targets"]
    label, partner = ctx["names"].get(pair, (f"{pair[0]}–{pair[1]}", pair[1]))
    s = shell_analysis(prod, targets=targets)
    core = excluded_core(prod, s.r_peak) if np.isfinite(s.r_peak) else None
    resolution = shell_resolution_verdict(s, targets, core)
    report = None
    if s.detection == "ok" and np.isfinite(s.r_min):
        report = analyse_series(block_coordination(fine, s.r_min)[start:], detect_start=False)
        s.cn_err = report.err
    parts = [resolution] if report is None else [resolution, cn_sampling_verdict(report, f"CN({label})", targets)]
    exchange = None
    if resolution.converged:
        x = ctx["positions"][ctx["t0_frame"] :]
        exchange = shell_exchange(
            x,
            ctx["cells"][ctx["t0_frame"] :],
            ctx["groups"][pair[0]],
            ctx["groups"][pair[1]],
            s.r_min,
            s.r_min + ctx["buffer"],
            max_centres=ctx["max_centres"],
        )
        members = s.cn * exchange.n_centres
        parts.append(shell_exchange_verdict(exchange.n_events, exchange.n_frames, label, partner, targets, members))
        parts.append(shell_sampling_verdict(prod.n_a, ctx["duration_ps"], targets))
        travel = min(rms_travel(x[0, ctx["groups"][g]], x[-1, ctx["groups"][g]]) for g in pair)
        parts.append(relaxation_verdict(ctx["t_cut_ps"], travel, ctx["box_A"], f"CN({label})", targets))
    verdict = worst(*parts)
    s.status, s.criterion, s.reason, s.run_factor = (
        verdict.status,
        verdict.criterion,
        verdict.reason,
        verdict.run_factor,
    )
    x, centres = ctx["positions"], ctx["groups"][pair[0]]
    peak = shell_peak(
        fine, start, s.r_peak, resolution, x[ctx["t0_frame"], centres], x[-1, centres], f"r_peak({label})", targets
    )
    return ShellSampling(shell=s, report=report, exchange=exchange, resolution=resolution, verdict=verdict, peak=peak)


def analyse_structure(
    positions: ArrayLike,
    cells: ArrayLike,
    times_ps: ArrayLike,
    groups: Mapping[str, np.ndarray],
    pairs: Sequence[Pair],
    r_max: float,
    n_bins: int,
    *,
    n_blocks: int = 5,
    targets: ConvergenceTargets | None = None,
    names: Mapping[Pair, tuple[str, str]] | None = None,
    kb_pairs: Mapping[str, Pair] | None = None,
    max_series: int = MAX_SERIES,
    exchange_buffer_A: float = EXCHANGE_BUFFER_A,
    exchange_max_centres: int | None = EXCHANGE_MAX_CENTRES,
    n_workers: int = 1,
) -> StructureSampling:
    """RDFs, first shells and (optionally) a_cc of a run, after one equilibration cut; see the module text.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array_like, Å
    cells : (n_frames, 3, 3) or (3, 3) array_like, Å, lattice vectors as rows
    times_ps : (n_frames,) array_like, ps
    groups : mapping of str to int arrays
        Named atom selections.
    pairs : sequence of (str, str)
        Pairs ``(a, b)`` of group names (``a`` the centre).
    r_max : float, Å
        RDF range (at most half the smallest cell width).
    n_bins : int
        RDF bins.
    n_blocks : int
        Blocks of the stored production g(r) (the first-shell significance test uses them).
    targets : ConvergenceTargets, optional
    names : mapping of pair to (label, partner), optional
        For the reasons, e.g. ``("Na–O", "water")``; default ``("a–b", "b")``.
    kb_pairs : mapping of str to pair, optional
        The pairs of the five KB integrals, keys ``pp``, ``mm``, ``pm``, ``pw``, ``mw`` (all among ``pairs``);
        when given, a_cc is computed (``acc``) and its series takes part in the cut.
    max_series : int
        Most time blocks of the g(r) series.
    exchange_buffer_A : float, Å
        Hysteresis of the exchange count.
    exchange_max_centres : int or None
        Most centres followed for the exchange count.
    n_workers : int
        Threads of :func:`~electrodb.analysis.structure.pair_rdfs`.

    Returns
    -------
    StructureSampling
    """
    t = targets or ConvergenceTargets()
    x = positions if isinstance(positions, np.ndarray) else np.asarray(positions)
    times = np.asarray(times_ps, dtype=float)
    n_frames = x.shape[0]
    if n_frames < 2 or times.shape != (n_frames,):
        raise ValueError("analyse_structure needs at least 2 frames and one time per frame")
    n_series = int(min(n_frames, max_series))
    fine = pair_rdfs(x, cells, groups, pairs, r_max, n_bins, n_blocks=n_series, n_workers=n_workers)
    start_frames = next(iter(fine.values())).block_start
    assert start_frames is not None

    series: dict[str, np.ndarray] = {}
    for pair, res in fine.items():
        s = shell_analysis(regroup_blocks(res, n_blocks), targets=t)
        if s.detection == "ok" and np.isfinite(s.r_min):
            series[f"CN {pair[0]}-{pair[1]}"] = block_coordination(res, s.r_min)
    whole = None
    if kb_pairs is not None:
        try:
            whole = _acc_series(fine, kb_pairs, groups, 0)
            series["a_cc"] = whole.series
        except (ValueError, KeyError):
            pass
    cuts = {k: significant_cut(v, t.stationarity_sigma) for k, v in series.items() if v.size >= 2 and np.ptp(v) > 0}
    start = max(cuts.values(), default=0)
    t0_frame = int(start_frames[start])
    block_t = times[start_frames] - times[0]
    ctx = {
        "targets": t,
        "names": dict(names or {}),
        "positions": x,
        "cells": as_cells(cells, n_frames),
        "groups": groups,
        "t0_frame": t0_frame,
        "buffer": float(exchange_buffer_A),
        "max_centres": exchange_max_centres,
        "duration_ps": float(times[-1] - times[t0_frame]),
        "t_cut_ps": float(times[t0_frame] - times[0]),
        "box_A": float(smallest_widths(as_cells(cells, n_frames)[t0_frame:]).min()),
    }
    rdfs: dict[Pair, RDFResult] = {}
    shells: dict[Pair, ShellSampling] = {}
    for pair, res in fine.items():
        rdfs[pair] = regroup_blocks(res, n_blocks, start=start)
        shells[pair] = _shell(pair, res, rdfs[pair], start, ctx)
    acc = None if kb_pairs is None else _production_acc(fine, kb_pairs, start, ctx, whole)
    return StructureSampling(
        rdfs=rdfs,
        shells=shells,
        t0_frame=t0_frame,
        t_equil_ps=float(times[t0_frame] - times[0]),
        cuts_ps={k: float(block_t[v]) for k, v in cuts.items()},
        n_series=n_series,
        acc=acc,
        series_rdfs=dict(fine),
        start_block=int(start),
    )
