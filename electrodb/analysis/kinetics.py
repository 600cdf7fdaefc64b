r"""First-shell residence times and ligand-exchange rates (Impey–Madden–McDonald survival function).

Pure numpy/scipy.  Positions in Å ``(n_frames, n_atoms, 3)`` (wrapped or unwrapped), cells as rows,
times in ps.

Definitions (R. W. Impey, P. A. Madden, I. R. McDonald, J. Phys. Chem. 87, 5071 (1983)):

* presence :math:`h_{ij}(t) = 1` if ligand *j* (e.g. a water oxygen) is within ``r_cut`` of centre *i*
  (an ion) in frame *t* (``r_cut`` = first minimum of the ion–O RDF);
* tolerance :math:`t^*`: an absence lasting at most :math:`t^*` (absent frames × Δt ≤ t*), with the ligand
  present before and after, does not count as leaving — the gap is filled (same "intermittency" correction as
  MDAnalysis ``SurvivalProbability``); IMM used :math:`t^* = 2` ps;
* survival function, averaged over all time origins :math:`t_0`,

  .. math::

      S(\tau) = \frac{\langle \sum_{ij} n_{ij}(t_0, \tau)\rangle_{t_0}}
                      {\langle \sum_{ij} h_{ij}(t_0)\rangle_{t_0}},

  with :math:`n_{ij}(t_0,\tau) = 1` if *j* is (gap-filled) present continuously from :math:`t_0` to
  :math:`t_0+\tau`.  It is computed exactly from the lengths :math:`L` of the gap-filled presence runs:
  :math:`\sum_{t_0} n(t_0,\tau) = \sum_\mathrm{runs}\max(L-\tau, 0)`, averaged over the
  :math:`F-\tau` available origins, so runs cut by the end of the trajectory are handled without bias.
* residence time :math:`\tau_\mathrm{res}`: fitted to :math:`S(t) \approx A e^{-t/\tau}` (default) or the
  integral :math:`\int_0^\infty S\,dt`; exchange rate :math:`k = 1/\tau_\mathrm{res}`.

Shell exchange (:func:`shell_exchange`): a coordination number is an average over the members a shell takes in
and lets go; a run in which no member left or entered has sampled one arrangement, not the coordination number.
Events are counted from core to core, so that a member rattling across the cutoff is not an exchange: a
(centre, ligand) pair is *in* when closer than ``r_in``, *out* beyond ``r_out``, and keeps its last state in
between; an event is a change from in to out (an exit) or out to in (an entry).  A pair that starts between the
radii gets its first state without an event.

Verdict (:func:`residence_verdict`): ``insufficient`` when τ could not be computed (no ligand, S(t) does not
decay, failed fit); ``unconverged`` when the run is shorter than ``ConvergenceTargets.residence_min_run_over_tau``
× τ (τ is then withheld from ``tau`` and kept in ``tau_estimate``) or when no block error is available;
else ``converged``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.integrate import trapezoid

from electrodb.analysis.convergence import ConvergenceTargets, Status, Verdict
from electrodb.analysis.periodic import as_cells, frame_chunk, frame_distances, is_orthorhombic
from electrodb.analysis.statistics import block_standard_error

__all__ = [
    "ResidenceResult",
    "ShellExchange",
    "residence_time",
    "residence_verdict",
    "shell_exchange",
    "shell_presence",
    "survival_function",
]


def shell_presence(
    positions: np.ndarray,
    cells: np.ndarray,
    centers: np.ndarray,
    ligands: np.ndarray,
    r_cut: float,
    *,
    compact: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Boolean first-shell presence matrix ``h[t, i, j] = |r_j(t) - r_i(t)|_PBC < r_cut``.

    Built one centre at a time (and in frame chunks), so the working memory is ~ n_frames_chunk × n_ligands
    distances; the boolean output is 1 byte per (frame, centre, ligand).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å
    cells : (n_frames, 3, 3) or (3, 3) array, Å (orthorhombic or triclinic)
    centers : int index array, e.g. the ions
    ligands : int index array, e.g. the water oxygens
    r_cut : float, Å
    compact : bool
        If True, keep only the (centre, ligand) pairs present in at least one frame and return
        ``(presence (n_frames, n_pairs), pairs (n_pairs, 2))`` where ``pairs`` holds positions within
        ``centers`` and ``ligands``.  Pairs never in contact do not contribute to the survival function, so
        this is the memory-efficient input for :func:`survival_function`.

    Returns
    -------
    (n_frames, n_centers, n_ligands) bool array, or the compact tuple.
    """
    x = np.asarray(positions)
    n_frames = x.shape[0]
    cen = np.asarray(centers, dtype=np.intp)
    lig = np.asarray(ligands, dtype=np.intp)
    H = as_cells(cells, n_frames)
    chunk = frame_chunk(n_frames, len(lig), not is_orthorhombic(H))
    per_center: list[np.ndarray] = []
    pairs: list[np.ndarray] = []
    out = None if compact else np.zeros((n_frames, len(cen), len(lig)), dtype=bool)
    for ic, c in enumerate(cen):
        h = np.empty((n_frames, len(lig)), dtype=bool)
        for f0 in range(0, n_frames, chunk):
            f1 = min(n_frames, f0 + chunk)
            d = frame_distances(x[f0:f1, [c]], x[f0:f1, lig], H[f0:f1])[:, 0, :]
            h[f0:f1] = d < r_cut
        if out is not None:
            out[:, ic, :] = h
        else:
            ever = np.nonzero(h.any(axis=0))[0]
            per_center.append(h[:, ever])
            pairs.append(np.stack([np.full(len(ever), ic), ever], axis=1))
    if out is not None:
        return out
    pres = np.concatenate(per_center, axis=1) if per_center else np.zeros((n_frames, 0), dtype=bool)
    pr = np.concatenate(pairs, axis=0) if pairs else np.zeros((0, 2), dtype=np.intp)
    return pres, pr


@dataclass(frozen=True)
class ShellExchange:
    """Members entering and leaving a first shell over a run (:func:`shell_exchange`).

    Attributes
    ----------
    n_entries, n_exits : int
        Ligands that entered (from beyond ``r_out`` to below ``r_in``) or left (the reverse) the shell of a
        centre, summed over the centres examined and the frames.
    n_centres : int
        Centres examined (a subset when ``max_centres`` was given).
    n_frames : int
        Frames examined.
    r_in, r_out : float
        Hysteresis radii, Å.
    """

    n_entries: int
    n_exits: int
    n_centres: int
    n_frames: int
    r_in: float
    r_out: float

    @property
    def n_events(self) -> int:
        """Entries + exits."""
        return self.n_entries + self.n_exits


def shell_exchange(
    positions: np.ndarray,
    cells: np.ndarray,
    centers: np.ndarray,
    ligands: np.ndarray,
    r_in: float,
    r_out: float | None = None,
    *,
    max_centres: int | None = None,
) -> ShellExchange:
    """Count first-shell exchange events (entries and exits, from core to core) over a trajectory.

    A (centre, ligand) pair is *in* when its distance is below ``r_in``, *out* when it exceeds ``r_out``, and keeps
    its last state in between; an entry is a change from out to in, an exit from in to out (a pair first seen
    between the radii gets its state without an event).  A centre that is also a ligand (like pairs) never changes
    state with itself, and the exchange of two like atoms counts once from each side (events are counted per
    centre, like the coordination number).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å (wrapped or unwrapped)
    cells : (n_frames, 3, 3) or (3, 3) array, Å, lattice vectors as rows
    centers, ligands : int index arrays
    r_in : float, Å
        Shell radius (the first minimum of g(r)).
    r_out : float, Å, optional
        Exit radius, ``>= r_in``; default ``r_in`` (every crossing counts).
    max_centres : int, optional
        Examine at most this many centres, evenly spread over ``centers`` (bounds the cost of water–water shells;
        the count is then a lower bound of the total).

    Returns
    -------
    ShellExchange
    """
    x = np.asarray(positions)
    n_frames = x.shape[0]
    cen = np.asarray(centers, dtype=np.intp).ravel()
    lig = np.asarray(ligands, dtype=np.intp).ravel()
    r_out = float(r_in) if r_out is None else float(r_out)
    if r_out < r_in:
        raise ValueError(f"r_out = {r_out} Å must be >= r_in = {r_in} Å")
    if max_centres is not None and cen.size > max_centres:
        cen = cen[np.unique(np.linspace(0, cen.size - 1, int(max_centres)).astype(np.intp))]
    if n_frames == 0 or cen.size == 0 or lig.size == 0:
        return ShellExchange(0, 0, int(cen.size), n_frames, float(r_in), r_out)
    H = as_cells(cells, n_frames)
    chunk = frame_chunk(n_frames, cen.size * lig.size, not is_orthorhombic(H))
    state = np.zeros((cen.size, lig.size), dtype=np.int8)  # 1 in, -1 out, 0 not yet known
    n_in = n_out = 0
    for f0 in range(0, n_frames, chunk):
        f1 = min(n_frames, f0 + chunk)
        d = frame_distances(x[f0:f1, cen], x[f0:f1, lig], H[f0:f1])
        for k in range(f1 - f0):
            new = np.where(d[k] < r_in, 1, np.where(d[k] > r_out, -1, state)).astype(np.int8)
            changed = (state != 0) & (new != state)
            n_in += int((changed & (new == 1)).sum())
            n_out += int((changed & (new == -1)).sum())
            state = new
    return ShellExchange(n_in, n_out, int(cen.size), n_frames, float(r_in), r_out)


def _run_lengths(presence: np.ndarray, gap_frames: int) -> np.ndarray:
    """Lengths (frames) of presence runs after filling gaps of at most ``gap_frames`` absent frames."""
    h = np.asarray(presence, dtype=bool).reshape(presence.shape[0], -1)
    h = h[:, h.any(axis=0)]
    if h.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.zeros((h.shape[1], h.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = h.T
    edges = np.diff(padded, axis=1)
    pair_s, start = np.nonzero(edges == 1)  # row-major: sorted by pair, then time
    _, end = np.nonzero(edges == -1)  # exclusive ends, aligned with the starts
    if gap_frames > 0 and len(start) > 1:
        same = pair_s[1:] == pair_s[:-1]
        merge = same & (start[1:] - end[:-1] <= gap_frames)  # run k+1 joins run k
        keep_start = np.concatenate([[True], ~merge])
        keep_end = np.concatenate([~merge, [True]])
        start, end = start[keep_start], end[keep_end]
    return (end - start).astype(np.int64)


def survival_function(presence: np.ndarray, times: np.ndarray, t_star: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""IMM survival function :math:`S(\tau)` with tolerance ``t_star``, averaged over all time origins.

    Parameters
    ----------
    presence : (n_frames, ...) bool array
        ``h[t, ...]``, any trailing shape, e.g. ``(n_frames, n_centers, n_ligands)`` from
        :func:`shell_presence` or its compact ``(n_frames, n_pairs)`` form.
    times : (n_frames,) array, ps, uniformly spaced.
    t_star : float, ps
        Absences of duration ``n_absent × Δt <= t_star`` between two presences are ignored.

    Returns
    -------
    lag_times : (n_frames,) array, ps
    S : (n_frames,) array, dimensionless, ``S[0] == 1`` (all NaN if no ligand is ever present).
    """
    h = np.asarray(presence, dtype=bool)
    n_frames = h.shape[0]
    t = np.asarray(times, dtype=np.float64)
    if len(t) != n_frames or n_frames < 2:
        raise ValueError("times must have one entry per frame (at least 2)")
    dt = float(np.mean(np.diff(t)))
    if dt <= 0:
        raise ValueError("times must be increasing")
    gap_frames = int(np.floor(t_star / dt + 1e-9)) if t_star > 0 else 0
    lengths = _run_lengths(h, gap_frames)
    lags = np.arange(n_frames) * dt
    if len(lengths) == 0:
        return lags, np.full(n_frames, np.nan)
    c = np.bincount(lengths, minlength=n_frames + 1).astype(np.float64)  # c[L]
    L = np.arange(n_frames + 1, dtype=np.float64)
    # A(tau) = sum_{L > tau} c_L L, B(tau) = sum_{L > tau} c_L  ->  num(tau) = A - tau B
    A = np.cumsum((c * L)[::-1])[::-1]
    B = np.cumsum(c[::-1])[::-1]
    tau = np.arange(n_frames)
    num = A[tau + 1] - tau * B[tau + 1]  # runs with L == tau contribute 0
    per_origin = num / (n_frames - tau)
    return lags, per_origin / per_origin[0]


@dataclass
class ResidenceResult:
    """First-shell residence time from the IMM survival function.

    Attributes
    ----------
    tau : float or None
        Residence time, ps (None when not converged; see ``flag``/``reason``).
    tau_err : float or None
        Standard error from ``n_blocks`` contiguous time blocks,
        ``std(tau_blocks, ddof=1)/sqrt(n_blocks)``, ps (None when any block does not decay or for a single
        block).
    exchange_rate : float or None
        :math:`k = 1/\\tau`, 1/ps.
    exchange_rate_err : float or None
        :math:`\\sigma_\\tau/\\tau^2`, 1/ps.
    flag : str
        ``'ok'`` or ``'not_converged'`` (kept for compatibility; ``status`` is the Verdict).
    reason : str
        Verdict reason: why no number is reported, or why it is unconverged (empty when converged).
    method : str
        ``'exponential'`` or ``'integral'``.
    t_star : float, ps
    tau_blocks : ndarray, ps (NaN for blocks that did not decay)
    run_length_ps : float
    lag_times_ps : ndarray
    survival : ndarray
        S(τ) of the whole run.
    tau_estimate : float or None
        The whole-run fit even when the run is too short for it (ps; None when it could not be computed).
    status, criterion : str
        Verdict status and criterion (see :func:`residence_verdict`).
    """

    tau: float | None
    tau_err: float | None
    exchange_rate: float | None
    exchange_rate_err: float | None
    flag: str
    reason: str
    method: str
    t_star: float
    tau_blocks: np.ndarray
    run_length_ps: float
    lag_times_ps: np.ndarray = field(repr=False)
    survival: np.ndarray = field(repr=False)
    tau_estimate: float | None = None
    status: Status = "insufficient"
    criterion: str = ""
    run_factor: float | None = None

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.status, self.criterion, self.reason, self.run_factor)


def residence_verdict(
    tau: float | None,
    run_length_ps: float,
    tau_err: float | None = None,
    failure: str = "",
    targets: ConvergenceTargets | None = None,
) -> Verdict:
    """Verdict of a residence time ``tau`` (ps; None if it could not be computed, ``failure`` says why).

    ``insufficient`` when ``tau`` is None; ``unconverged`` when ``run_length_ps < residence_min_run_over_tau × tau``
    or ``tau_err`` is None; else ``converged``. ``run_factor``: ``residence_min_run_over_tau × tau / run`` for a
    run too short for tau (None for the other failures).
    """
    t = targets or ConvergenceTargets()
    crit = f"run length >= {t.residence_min_run_over_tau:g} tau; block error available"
    if tau is None or not np.isfinite(tau):
        return Verdict("insufficient", crit, f"tau could not be computed: {failure or 'no estimate'}")
    n_tau = t.residence_min_run_over_tau
    if run_length_ps < n_tau * tau:
        why = f"run {run_length_ps:.3g} ps < {n_tau:g} × tau = {n_tau * tau:.3g} ps"
        return Verdict("unconverged", crit, why, n_tau * tau / run_length_ps if run_length_ps > 0 else None)
    if tau_err is None:
        return Verdict("unconverged", crit, "no block error: run too short for blocks or a block did not decay")
    return Verdict("converged", crit)


def _fit_tau(
    lags: np.ndarray, s: np.ndarray, method: str, s_min: float, max_lag: float, threshold: float
) -> tuple[float | None, str]:
    """Residence time from one survival curve; returns (tau or None, reason)."""
    if not np.isfinite(s[0]):
        return None, "ligand never present"
    usable = lags <= max_lag
    lu, su = lags[usable], s[usable]
    if len(su) < 3 or np.nanmin(su) > threshold:
        return None, f"S(t) does not decay below {threshold:.3g} within {max_lag:g} ps"
    below = np.nonzero(su < s_min)[0]
    i_end = int(below[0]) if len(below) else len(su) - 1  # first point under s_min (or last usable)
    if method == "exponential":
        m = (lu[: i_end + 1] > 0) & (su[: i_end + 1] > 0)
        if m.sum() < 2:
            return None, "too few points in the exponential fit range"
        slope = np.polyfit(lu[: i_end + 1][m], np.log(su[: i_end + 1][m]), 1)[0]
        if slope >= 0:
            return None, "non-decaying exponential fit"
        return float(-1.0 / slope), ""
    if method == "integral":
        t_c, s_c = lu[i_end], su[i_end]
        integral = float(trapezoid(su[: i_end + 1], lu[: i_end + 1]))
        tail = s_c * t_c / -np.log(s_c) if 0 < s_c < 1 else 0.0  # exponential continuation
        return integral + float(tail), ""
    raise ValueError(f"unknown method {method!r} (use 'exponential' or 'integral')")


def residence_time(
    presence: np.ndarray,
    times: np.ndarray,
    t_star: float = 2.0,
    n_blocks: int = 5,
    *,
    method: str = "exponential",
    max_tau_fraction: float | None = None,
    decay_threshold: float = float(np.exp(-1.0)),
    s_min: float = 0.05,
    max_lag_fraction: float = 0.5,
    targets: ConvergenceTargets | None = None,
) -> ResidenceResult:
    r"""Residence time and exchange rate from the IMM survival function, with block uncertainty.

    Fit (``method``):

    * ``'exponential'`` (default): least squares of :math:`\ln S(t) = \ln A - t/\tau` over
      :math:`0 < t \le t_c`, :math:`t_c` = first lag with :math:`S < s_\mathrm{min}` (default 0.05); the free
      amplitude :math:`A` absorbs a fast initial (recrossing/librational) drop.
    * ``'integral'``: :math:`\tau = \int_0^{t_c} S\,dt` (trapezoid) plus the exponential tail
      :math:`S(t_c)\,t_c/(-\ln S(t_c))`.

    Only lags up to ``max_lag_fraction`` of the run are used (fewer origins beyond).  Convergence: if S does
    not fall below ``decay_threshold`` (1/e) within that range (Verdict ``insufficient``), or :math:`\tau >`
    ``max_tau_fraction`` × run length (default ``1 / targets.residence_min_run_over_tau``; Verdict
    ``unconverged``, the value kept in ``tau_estimate``), the result is ``flag='not_converged'`` with
    ``tau=None`` and a ``reason`` — no number is reported.
    The uncertainty is the standard error of the same estimate in ``n_blocks`` contiguous blocks
    (applied to the whole-run value; blocks are shorter, so it is if anything conservative).

    Parameters
    ----------
    presence : (n_frames, ...) bool array
        From :func:`shell_presence`.
    times : (n_frames,) array, ps
    t_star : float, ps
        IMM tolerance (2 ps in the original work; 0 gives the strict continuous residence).
    n_blocks : int
    method, max_tau_fraction, decay_threshold, s_min, max_lag_fraction
        See above.
    targets : ConvergenceTargets, optional
        For the Verdict (``residence_min_run_over_tau``); defaults to ``ConvergenceTargets()``.

    Returns
    -------
    ResidenceResult
    """
    h = np.asarray(presence, dtype=bool)
    t = np.asarray(times, dtype=np.float64)
    n_frames = h.shape[0]
    lags, s = survival_function(h, t, t_star)
    dt = lags[1]
    run = float(n_frames * dt)
    tgt = targets or ConvergenceTargets()
    frac = 1.0 / tgt.residence_min_run_over_tau if max_tau_fraction is None else max_tau_fraction
    tau, reason = _fit_tau(lags, s, method, s_min, max_lag_fraction * lags[-1], decay_threshold)
    tau_estimate = tau
    if tau is not None and tau > frac * run:
        reason = f"tau = {tau:.3g} ps exceeds {frac:g} of the run length ({run:g} ps)"
        tau = None
    n_b = n_frames // n_blocks if n_blocks >= 2 else 0
    tau_blocks = np.full(n_blocks if n_b >= 2 else 0, np.nan)
    if n_b >= 2:
        for k in range(n_blocks):
            sl = slice(k * n_b, (k + 1) * n_b)
            lb, sb = survival_function(h[sl], t[sl], t_star)
            tb, _ = _fit_tau(lb, sb, method, s_min, max_lag_fraction * lb[-1], decay_threshold)
            tau_blocks[k] = np.nan if tb is None else tb
    if tau is None:
        if tau_estimate is None:  # S(t) above 1/e up to the longest lag used: tau is longer, a lower bound
            v = residence_verdict(None, run, None, reason, tgt)
            slow = np.isfinite(s[0]) and np.nanmin(s[lags <= max_lag_fraction * lags[-1]]) > decay_threshold
            v = replace(v, run_factor=max_lag_fraction * lags[-1] / (frac * run) if slow else None)
        else:  # run too short for tau: at best unconverged, whichever of the two criteria failed
            v = Verdict("unconverged", residence_verdict(None, run, targets=tgt).criterion, reason)
            v = replace(v, run_factor=tau_estimate / (frac * run))
        return ResidenceResult(
            None,
            None,
            None,
            None,
            "not_converged",
            v.reason,
            method,
            float(t_star),
            tau_blocks,
            run,
            lags,
            s,
            tau_estimate=tau_estimate,
            status=v.status,
            criterion=v.criterion,
            run_factor=v.run_factor,
        )
    tau_err = None
    if len(tau_blocks) >= 2 and np.all(np.isfinite(tau_blocks)):
        tau_err = float(block_standard_error(tau_blocks))
    v = residence_verdict(tau, run, tau_err, "", tgt)
    return ResidenceResult(
        tau=tau,
        tau_err=tau_err,
        exchange_rate=1.0 / tau,
        exchange_rate_err=None if tau_err is None else tau_err / tau**2,
        flag="ok",
        reason=v.reason,
        method=method,
        t_star=float(t_star),
        tau_blocks=tau_blocks,
        run_length_ps=run,
        lag_times_ps=lags,
        survival=s,
        tau_estimate=tau,
        status=v.status,
        criterion=v.criterion,
        run_factor=v.run_factor,
    )
