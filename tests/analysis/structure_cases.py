"""Synthetic structures whose answers are known, for the structure, pairing and a_cc verdicts and their coverage.

Pure numpy (plus a writer into the stores for the pipeline tests). Every case is an ideal gas or a frozen
structure, so the truth is exact:

* **ideal gas** (:func:`ideal_gas`): ions and rigid waters without forces, each molecule a random walk with
  ``step_A`` Å per axis per frame (waters also turn, rigidly). Every g(r), normalised by the partner density
  (N_b − δ_ab)/V, is 1; every Kirkwood–Buff integral is 0 and a_cc = 1; no first shell exists. ``start="lattice"``
  starts every molecule on a simple cubic lattice: the first frames hold lattice structure that a random walk
  only slowly forgets (a transient). Successive frames are correlated when ``step_A`` is small.
* **static structure** (:func:`static_structure`): waters on a simple cubic lattice, ions at cube centres (8
  waters each at a√3/2), frozen, with Gaussian noise of ``noise_A`` per frame. Resolved first shells with CN 8,
  but no member ever leaves or enters one.
* **hydrated ions** (:func:`hydrated_ions`): ions that carry 6 vibrating waters each and never let one go, while
  the complexes move and turn: a first-peak position that converges where the CN cannot (:func:`hydrated_peak`).

Truths for an ideal gas in a closed box of volume V with N_a centres and N_b partners (:func:`ideal_cn`,
:func:`ideal_pairing`): a partner is uniform and independent of the centre, so the mean number within r is
(N_b − δ_ab) · (4π r³/3)/V (the minimum image is exact for r ≤ L/2); the number of anions within r of a cation
is binomial(N_−, p = 4π r³/(3V)), so free = (1 − p)^N, CIP = N p (1 − p)^(N−1), AGG = the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import lfilter

from electrodb.analysis.convergence import ConvergenceTargets, worst
from electrodb.analysis.kinetics import shell_exchange
from electrodb.analysis.kirkwood_buff import acc_verdict
from electrodb.analysis.pairing import contact_shell_verdict, ion_pairing, pairing_sampling
from electrodb.analysis.sampling import analyse_series
from electrodb.analysis.shell_sampling import (
    cn_sampling_verdict,
    relaxation_verdict,
    rms_travel,
    shell_exchange_verdict,
)
from electrodb.analysis.shells import shell_sampling_verdict
from electrodb.analysis.structure import block_coordination
from electrodb.analysis.structure_sampling import analyse_structure, significant_cut

KB_PAIRS = {
    "pp": ("cation", "cation"),
    "mm": ("anion", "anion"),
    "pm": ("cation", "anion"),
    "pw": ("cation", "O_w"),
    "mw": ("anion", "O_w"),
}
NAMES = {
    ("cation", "O_w"): ("Na–O", "water"),
    ("anion", "O_w"): ("Cl–O", "water"),
    ("cation", "anion"): ("Na–Cl", "Cl"),
    ("cation", "cation"): ("Na–Na", "Na"),
    ("anion", "anion"): ("Cl–Cl", "Cl"),
}
_THETA = np.deg2rad(104.5) / 2


@dataclass
class Case:
    """A trajectory in memory: positions (F, N, 3) Å, a cubic cell (3, 3) Å, times (F,) ps, atom groups.

    Atoms are ordered cations, anions, then O, H, H per water; ``groups`` holds ``cation``, ``anion``, ``O_w``,
    ``H_w``.
    """

    positions: np.ndarray
    cell: np.ndarray
    times_ps: np.ndarray
    groups: dict[str, np.ndarray]
    symbols: list[str]

    @property
    def box_A(self) -> float:
        return float(self.cell[0, 0])

    @property
    def volume_A3(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    def frames(self, start: int, stop: int | None = None) -> Case:
        """The frames ``start:stop`` (a slice of the run, times kept)."""
        return replace(self, positions=self.positions[start:stop], times_ps=self.times_ps[start:stop])


def _groups(n_cat: int, n_an: int, n_w: int, with_h: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    n_ions = n_cat + n_an
    per_w = 3 if with_h else 1
    o = n_ions + per_w * np.arange(n_w)
    groups = {"cation": np.arange(n_cat), "anion": np.arange(n_cat, n_ions), "O_w": o}
    groups["H_w"] = np.sort(np.concatenate([o + 1, o + 2])) if with_h else np.zeros(0, dtype=int)
    symbols = ["Na"] * n_cat + ["Cl"] * n_an + (["O", "H", "H"] if with_h else ["O"]) * n_w
    return groups, symbols


def _rotations(rng: np.random.Generator, n: int, angle: float | None = None) -> np.ndarray:
    """``n`` rotation matrices: uniform (``angle`` None) or about random axes by N(0, angle) radians."""
    if angle is None:
        q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
        return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    w = rng.normal(0.0, angle, (n, 3))
    th = np.linalg.norm(w, axis=1)[:, None, None] + 1e-300
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    k = (k - k.transpose(0, 2, 1)) / th
    return np.eye(3) + np.sin(th) * k + (1.0 - np.cos(th)) * k @ k


def _lattice(n_ions: int, n_waters: int, box: float, rng: np.random.Generator) -> np.ndarray:
    """Simple cubic lattice sites: the ions as a rock-salt block (cation and anion alternate, so every ion starts
    with counter-ions at one lattice spacing), the waters on random other sites. Rows: ions (cations, anions),
    then waters."""
    side = int(np.ceil((n_ions + n_waters) ** (1 / 3)))
    idx = np.indices((side,) * 3).reshape(3, -1).T
    order = np.argsort(np.abs(idx - side / 2 + 0.5).max(axis=1) + 1e-3 * idx @ [1.0, side, side**2], kind="stable")
    block = idx[order[:n_ions]]  # the ions: a compact block in the middle of the box
    parity = block.sum(axis=1) % 2
    cat, an = block[parity == 0], block[parity == 1]
    k = min(len(cat), len(an), n_ions // 2)
    ions = np.concatenate([cat[:k], an[:k], cat[k:], an[k:]])[:n_ions]
    rest = idx[order[n_ions:]]
    waters = rest[rng.permutation(rest.shape[0])[:n_waters]]
    return (np.concatenate([ions, waters]) + 0.5) * (box / side)


def ideal_gas(
    n_formula: int = 12,
    n_waters: int = 512,
    box_A: float = 25.0,
    n_frames: int = 200,
    step_A: float = 1.0,
    frame_ps: float = 0.1,
    start: str = "uniform",
    seed: int = 0,
    with_h: bool = True,
) -> Case:
    """Ideal gas of NaCl and rigid waters (see the module text): random walks of ``step_A`` Å per axis per frame.

    ``start="uniform"`` is an equilibrated ideal gas from the first frame; ``"lattice"`` a simple cubic lattice
    start (a transient). ``with_h=False`` leaves out the hydrogens (faster, for the analysis-level studies).
    """
    rng = np.random.default_rng(seed)
    n_mol = 2 * n_formula + n_waters
    if start == "uniform":
        centres = rng.uniform(0.0, box_A, (n_mol, 3))
    else:
        centres = _lattice(2 * n_formula, n_waters, box_A, rng)
    walk = centres[None] + np.cumsum(
        np.concatenate([np.zeros((1, n_mol, 3)), rng.normal(0.0, step_A, (n_frames - 1, n_mol, 3))]), axis=0
    )
    groups, symbols = _groups(n_formula, n_formula, n_waters, with_h)
    pos = np.empty((n_frames, len(symbols), 3))
    n_ions = 2 * n_formula
    pos[:, :n_ions] = walk[:, :n_ions]
    if with_h:
        rot = _rotations(rng, n_waters)
        angle = min(np.pi, step_A / 1.5)  # turns about as far as it moves, on the scale of the molecule
        h = 0.96 * np.array([[np.cos(_THETA), np.sin(_THETA), 0.0], [np.cos(_THETA), -np.sin(_THETA), 0.0]])
        for f in range(n_frames):
            o = walk[f, n_ions:]
            arm = np.einsum("nij,kj->nki", rot, h)
            pos[f, n_ions:] = np.concatenate([o[:, None], o[:, None] + arm], axis=1).reshape(-1, 3)
            rot = _rotations(rng, n_waters, angle) @ rot
    else:
        pos[:, n_ions:] = walk[:, n_ions:]
    return Case(pos, np.eye(3) * box_A, np.arange(n_frames) * frame_ps, groups, symbols)


def static_structure(n_frames: int = 40, noise_A: float = 0.05, frame_ps: float = 1.0, seed: int = 0) -> Case:
    """Frozen structure: 512 waters on a simple cubic lattice (a = 3.1 Å), 12 Na⁺ and 12 Cl⁻ at cube centres, each
    with 8 waters at 2.68 Å; Gaussian noise ``noise_A`` per frame; frames labelled ``frame_ps`` apart."""
    rng = np.random.default_rng(seed)
    a, side = 3.1, 8
    box = a * side
    o = (np.indices((side,) * 3).reshape(3, -1).T + 0.0) * a
    cells = (np.indices((side // 2,) * 3).reshape(3, -1).T * 2 + 0.5) * a  # every other cube centre: 64 sites
    ions = cells[rng.permutation(cells.shape[0])[:24]]
    groups, symbols = _groups(12, 12, o.shape[0], True)
    arm = np.einsum(
        "nij,kj->nki",
        _rotations(rng, o.shape[0]),
        0.96 * np.array([[np.cos(_THETA), np.sin(_THETA), 0], [np.cos(_THETA), -np.sin(_THETA), 0]]),
    )
    water = np.concatenate([o[:, None], o[:, None] + arm], axis=1).reshape(-1, 3)
    base = np.concatenate([ions, water])
    pos = base[None] + rng.normal(0.0, noise_A, (n_frames, base.shape[0], 3))
    return Case(pos, np.eye(3) * box, np.arange(n_frames) * frame_ps, groups, symbols)


_OCTAHEDRON = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
_CUBOCTAHEDRON = np.array(
    [[a, b, 0] for a in (1, -1) for b in (1, -1)]
    + [[a, 0, b] for a in (1, -1) for b in (1, -1)]
    + [[0, a, b] for a in (1, -1) for b in (1, -1)],
    dtype=float,
) / np.sqrt(2.0)


def hydrated_ions(
    n_ions: int = 8,
    d0_A: float = 2.4,
    vib_A: float = 0.08,
    vib_frames: float = 3.0,
    step_A: float = 0.08,
    turn: float = 0.1,
    box_A: float = 26.0,
    n_frames: int = 400,
    frame_ps: float = 0.05,
    seed: int = 0,
) -> Case:
    """Ions that keep their shells: each carries 6 water O at the corners of an octahedron, at a distance
    ``d0_A`` + a vibration (Ornstein–Uhlenbeck, RMS ``vib_A``, correlation time ``vib_frames`` frames) that never
    lets a member go, and a looser second shell of 12 O at 4.6 Å (RMS 0.3 Å, cuboctahedron) so that g(r) has a
    first minimum as in a liquid; the complexes random-walk (``step_A`` per axis per frame, from a grid so that
    they do not overlap) and turn (N(0, ``turn``) rad per frame). No member ever leaves or enters a shell (a CN
    that was not sampled), but the peak position is sampled by the vibration: :func:`hydrated_peak` is its truth.
    Groups: ``cation`` (the ions) and ``O_w`` (the shell members)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_ions ** (1 / 3)))
    grid = (np.indices((side,) * 3).reshape(3, -1).T[:n_ions] + 0.5) * box_A / side
    steps = np.concatenate([np.zeros((1, n_ions, 3)), rng.normal(0.0, step_A, (n_frames - 1, n_ions, 3))])
    centres = grid[None] + np.cumsum(steps, axis=0)
    dirs = np.concatenate([_OCTAHEDRON, _CUBOCTAHEDRON])
    phi = np.exp(-1.0 / vib_frames)
    e = rng.normal(size=(n_frames, n_ions, dirs.shape[0])) * np.sqrt(1.0 - phi**2)
    e[0] = rng.normal(size=(n_ions, dirs.shape[0]))
    ou = lfilter([1.0], [1.0, -phi], e, axis=0)
    radial = np.concatenate([d0_A + vib_A * ou[..., :6], 4.6 + 0.3 * ou[..., 6:]], axis=-1)
    rot = _rotations(rng, n_ions)
    n_members = n_ions * dirs.shape[0]
    pos = np.empty((n_frames, n_ions + n_members, 3))
    for f in range(n_frames):
        arms = np.einsum("nij,kj->nki", rot, dirs) * radial[f][..., None]
        pos[f, :n_ions] = centres[f]
        pos[f, n_ions:] = (centres[f][:, None] + arms).reshape(-1, 3)
        rot = _rotations(rng, n_ions, turn) @ rot
    groups = {"cation": np.arange(n_ions), "O_w": np.arange(n_ions, n_ions + n_members)}
    return Case(pos, np.eye(3) * box_A, np.arange(n_frames) * frame_ps, groups, ["Na"] * n_ions + ["O"] * n_members)


def hydrated_peak(d0_A: float = 2.4, vib_A: float = 0.08) -> float:
    """First-peak position of g(r) of :func:`hydrated_ions`: the maximum of N(r; d0, σ)/r², ≈ d0 − 2σ²/d0 (Å)."""
    return float(0.5 * (d0_A + np.sqrt(d0_A**2 - 8.0 * vib_A**2)))


# ------------------------------------------------------------------------------------------------- truths
def ideal_cn(case: Case, a: str, b: str, r: float) -> float:
    """Mean number of ``b`` within ``r`` (Å) of an ``a`` in an ideal gas: (N_b − δ_ab) · (4π r³/3) / V."""
    n_b = len(case.groups[b]) - (1 if a == b else 0)
    return n_b * 4.0 / 3.0 * np.pi * r**3 / case.volume_A3


def ideal_pairing(case: Case, r: float) -> dict[str, float]:
    """Fractions of cations with 0 (free), 1 (CIP), ≥ 2 (AGG) anions within ``r`` (Å): binomial(N_−, p)."""
    n = len(case.groups["anion"])
    p = 4.0 / 3.0 * np.pi * r**3 / case.volume_A3
    free, cip = (1 - p) ** n, n * p * (1 - p) ** (n - 1)
    return {"free": free, "cip": cip, "agg": 1.0 - free - cip}


# ---------------------------------------------------------------------------------------- one seed, all z
KB_GROUP_PAIRS = [("cation", "cation"), ("anion", "anion"), ("cation", "anion"), ("cation", "O_w"), ("anion", "O_w")]


def analyse_case(case: Case, n_blocks: int = 5, targets: ConvergenceTargets | None = None):
    """:func:`~electrodb.analysis.structure_sampling.analyse_structure` of the five KB pairs, as the builder runs
    it (range 0.999 L/2, 0.02 Å bins, a_cc)."""
    r_max = 0.999 * case.box_A / 2
    return analyse_structure(
        case.positions,
        case.cell,
        case.times_ps,
        case.groups,
        KB_GROUP_PAIRS,
        r_max,
        round(r_max / 0.02),
        n_blocks=n_blocks,
        targets=targets,
        names=NAMES,
        kb_pairs=KB_PAIRS,
    )


def ideal_gas_outcomes(
    case: Case, r_cn: float = 3.2, r_pair: float = 4.0, targets=None, truth: bool = True
) -> list[dict]:
    """Every checked quantity of one run: ``{"quantity", "value", "err", "truth", "converged"}``.

    * ``a_cc`` (truth 1), its full verdict (box, ions, error, range, series, travel);
    * ``CN(Na–O)`` and ``CN(Na–Na)`` at ``r_cn`` (truth (N_b − δ)·4πr³/3V), the builder's CN verdict (series,
      exchange events, centre time) at a fixed radius (an ideal gas has no shell to detect), its series taking
      part in the equilibration cut as a shell's would;
    * ``free`` and ``CIP`` fractions at ``r_pair`` (binomial truth), the builder's sampling verdict of pairing
      fractions without the contact-shell requirement;
    * ``pairing``: the builder's pairing verdict (cutoff at the Na–Cl first minimum only if that shell is
      resolved, else the 3.5 Å fallback and ``insufficient``), the free fraction against its truth at that cutoff;
    * ``shell <pair>``, ``shell peak <pair>``: whether the builder calls a first shell's CN or its peak position
      converged (truth: no shell exists).

    ``truth=False`` (a frozen structure, not an ideal gas) leaves the truths out.
    """
    t = targets or ConvergenceTargets()
    out = analyse_case(case, targets=t)
    rows: list[dict] = []

    def row(quantity: str, value, err, true, converged: bool) -> None:
        rows.append(
            {"quantity": quantity, "value": value, "err": err, "truth": true if truth else None, "converged": converged}
        )

    acc = out.acc
    if acc is not None and acc.a_cc is not None:
        ions = {"cations": len(case.groups["cation"]), "anions": len(case.groups["anion"])}
        r_last = float(out.rdfs[("cation", "cation")].r[-1])
        v = worst(acc_verdict(acc.a_cc, acc.a_cc_err, case.box_A, ions, r_last, t), acc.verdict)
        row("a_cc", acc.a_cc, acc.a_cc_err, 1.0, v.converged)
    for a, b in [("cation", "O_w"), ("cation", "cation")]:
        series_rdf = out.series_rdfs[(a, b)]
        series = block_coordination(series_rdf, r_cn)
        start = max(out.start_block, significant_cut(series, t.stationarity_sigma))  # as if a shell's CN series
        rep = analyse_series(series[start:], detect_start=False)
        frame0 = int(series_rdf.block_start[start])
        x = case.positions[frame0:]
        ex = shell_exchange(x, case.cell, case.groups[a], case.groups[b], r_cn, r_cn + 0.3, max_centres=64)
        duration = float(case.times_ps[-1] - case.times_ps[frame0])
        travel = min(rms_travel(x[0, case.groups[g]], x[-1, case.groups[g]]) for g in (a, b))
        v = worst(
            cn_sampling_verdict(rep, f"CN({NAMES[(a, b)][0]})", t),
            shell_exchange_verdict(ex.n_events, ex.n_frames, NAMES[(a, b)][0], b, t, rep.mean * ex.n_centres),
            shell_sampling_verdict(len(case.groups[a]), duration, t),
            relaxation_verdict(float(case.times_ps[frame0] - case.times_ps[0]), travel, case.box_A, "CN", t),
        )
        row(f"CN({NAMES[(a, b)][0]})", rep.mean, rep.err, ideal_cn(case, a, b, r_cn), v.converged)
    cat, an = case.groups["cation"], case.groups["anion"]
    ps = pairing_sampling(ion_pairing(case.positions[out.t0_frame :], case.cell, cat, an, r_pair, targets=t), t)
    for k in ("free", "cip"):
        rep = ps.cation[k]
        row(f"{k} fraction", rep.mean, rep.err, ideal_pairing(case, r_pair)[k], ps.verdict.converged)
    contact = out.shells[("cation", "anion")]
    cut = contact.shell.r_min if contact.resolution.converged else 3.5
    ps = pairing_sampling(ion_pairing(case.positions[out.t0_frame :], case.cell, cat, an, cut, targets=t), t)
    v = worst(ps.verdict, contact_shell_verdict(contact.resolution, None if contact.resolution.converged else cut))
    row("pairing", ps.cation["free"].mean, ps.cation["free"].err, ideal_pairing(case, cut)["free"], v.converged)
    for pair, sh in out.shells.items():  # no first shell exists: any converged one (CN or peak) is a false shell
        row(f"shell {NAMES[pair][0]}", sh.shell.cn, sh.shell.cn_err, None, sh.verdict.converged)
        row(f"shell peak {NAMES[pair][0]}", sh.peak.r_peak, sh.peak.r_peak_err, None, sh.peak.verdict.converged)
    return rows


def z_table(rows: list[dict]) -> dict[str, dict]:
    """Per quantity: runs, fraction converged, and over the converged ones with a truth the z-scores
    (value − truth)/err, their spread (root mean square), mean and fractions beyond 2σ and 4σ."""
    out: dict[str, dict] = {}
    for q in dict.fromkeys(r["quantity"] for r in rows):
        sel = [r for r in rows if r["quantity"] == q]
        conv = [r for r in sel if r["converged"] and r["truth"] is not None and r["err"]]
        z = np.array([(r["value"] - r["truth"]) / r["err"] for r in conv])
        nan = float("nan")
        out[q] = {
            "n": len(sel),
            "converged": len([r for r in sel if r["converged"]]) / len(sel),
            "z": z,
            "z_spread": float(np.sqrt(np.mean(z**2))) if z.size else nan,
            "z_mean": float(z.mean()) if z.size else nan,
            "out2": float(np.mean(np.abs(z) > 2)) if z.size else nan,
            "out4": float(np.mean(np.abs(z) > 4)) if z.size else nan,
        }
    return out


#: The coverage study: name -> (generator keyword arguments, frames kept (slice), whether the truths apply).
COVERAGE_CASES: dict[str, tuple[dict, slice, bool]] = {
    "ideal gas, 2 Å/frame, 400 frames": (
        {"n_formula": 12, "n_waters": 128, "box_A": 21.0, "n_frames": 400, "step_A": 2.0, "with_h": False},
        slice(None),
        True,
    ),
    "ideal gas, 1 Å/frame, 800 frames": (
        {"n_formula": 12, "n_waters": 128, "box_A": 21.0, "n_frames": 800, "step_A": 1.0, "with_h": False},
        slice(None),
        True,
    ),
    "ideal gas, 1 Å/frame, 400 frames": (
        {"n_formula": 12, "n_waters": 128, "box_A": 21.0, "n_frames": 400, "step_A": 1.0, "with_h": False},
        slice(None),
        True,
    ),
    "lattice start, first 30 frames": ({"n_frames": 30, "step_A": 0.3, "start": "lattice"}, slice(None), True),
    "equilibrated, 30 correlated frames": ({"n_frames": 30, "step_A": 0.3}, slice(None), True),
    "30-frame slice (frames 100-130)": ({"n_frames": 130, "step_A": 0.3}, slice(100, 130), True),
    "lattice-start transient, 300 frames": ({"n_frames": 300, "step_A": 0.3, "start": "lattice"}, slice(None), True),
}


def hydrated_outcomes(case: Case, targets: ConvergenceTargets | None = None, **kw) -> list[dict]:
    """The Na–O first-peak position of :func:`hydrated_ions` (``kw``: its parameters ``d0_A`` and ``vib_A``, for
    the truth :func:`hydrated_peak`) as the builder judges it, in the rows of :func:`ideal_gas_outcomes`."""
    r_max = 0.999 * case.box_A / 2
    pair = ("cation", "O_w")
    out = analyse_structure(
        case.positions, case.cell, case.times_ps, case.groups, [pair], r_max, round(r_max / 0.02),
        targets=targets, names={pair: NAMES[pair]},
    )  # fmt: skip
    peak = out.shells[pair].peak
    truth = hydrated_peak(**{k: kw[k] for k in ("d0_A", "vib_A") if k in kw})
    return [
        {
            "quantity": "r_peak(Na–O)",
            "value": peak.r_peak,
            "err": peak.r_peak_err,
            "truth": truth,
            "converged": peak.verdict.converged,
        }
    ]


#: Peak positions of ions that keep their shells (:func:`hydrated_ions`): name -> generator keyword arguments.
#: The vibration decorrelates over 3 frames (1.5 blocks of the 200-block series), 10 frames (5 blocks) and, with
#: 4 ions and 600 frames, 20 frames (7 blocks: N_eff near the target of 20).
HYDRATED_CASES: dict[str, dict] = {
    "hydrated ions, vibration over 3 frames, 400 frames": {},
    "hydrated ions, vibration over 10 frames, 400 frames": {"vib_frames": 10.0},
    "hydrated ions, 4 ions, vibration over 20 frames, 600 frames": {"n_ions": 4, "vib_frames": 20.0, "n_frames": 600},
}


def coverage_case(name: str, seeds: range) -> list[dict]:
    """Outcome rows (:func:`ideal_gas_outcomes`) of one :data:`COVERAGE_CASES` case over ``seeds``, of the
    frozen structure (``"static structure, 40 frames"``) or of a :data:`HYDRATED_CASES` case
    (:func:`hydrated_outcomes`)."""
    rows: list[dict] = []
    for seed in seeds:
        if name in HYDRATED_CASES:
            rows += hydrated_outcomes(hydrated_ions(seed=seed, **HYDRATED_CASES[name]), **HYDRATED_CASES[name])
            continue
        if name.startswith("static"):
            rows += ideal_gas_outcomes(
                static_structure(n_frames=40, noise_A=0.05, frame_ps=1.0, seed=seed), truth=False
            )
            continue
        kw, frames, truth = COVERAGE_CASES[name]
        case = ideal_gas(seed=seed, **kw)
        rows += ideal_gas_outcomes(case.frames(frames.start or 0, frames.stop), truth=truth)
    return rows


# -------------------------------------------------------------------------------------------- into stores
def write_case(stores, case: Case, salt: str = "NaCl", model_id: str = "sha256:structure-case", seed: int = 0):
    """Write ``case`` as a completed trajectory into ``stores`` (as an MD job would); returns its document."""
    from ase.data import atomic_masses, atomic_numbers

    from electrodb.documents.trajectory import TrajectoryDocument
    from electrodb.store.frames import TrajectoryWriter
    from electrodb.systems.boxes import ROLE_CODES
    from electrodb.systems.chemistry import parse_salt
    from electrodb.utils.provenance import stable_hash

    s = parse_salt(salt)
    n_cat, n_an, n_w = (len(case.groups[k]) for k in ("cation", "anion", "O_w"))
    if len(case.groups["H_w"]) != 2 * n_w:
        raise ValueError("write_case needs the waters' hydrogens (with_h=True)")
    role = [ROLE_CODES["cation"]] * n_cat + [ROLE_CODES["anion"]] * n_an
    role += [ROLE_CODES["water_O"], ROLE_CODES["water_H"], ROLE_CODES["water_H"]] * n_w
    n_ions = n_cat + n_an
    mol_id = list(range(n_ions)) + [n_ions + k // 3 for k in range(3 * n_w)]
    frame_ps = float(case.times_ps[1] - case.times_ps[0])
    tid = stable_hash({"case": salt, "n": case.n_frames, "pos": float(case.positions[:, :3].sum()), "seed": seed})
    doc = TrajectoryDocument(
        trajectory_id=tid,
        system_id=tid,
        campaign_ids=["synthetic"],
        salt=s.formula,
        cation=s.cation.name,
        anion=s.anion.name,
        molality=n_cat / (n_w * 0.018015),
        temperature=298.15,
        n_atoms=len(case.symbols),
        n_waters=n_w,
        n_cations=n_cat,
        n_anions=n_an,
        symbols=case.symbols,
        masses=[float(atomic_masses[atomic_numbers[x]]) for x in case.symbols],
        role=role,
        mol_id=mol_id,
        ion_center=[True] * n_ions + [False] * (3 * n_w),
        model_id=model_id,
        model={"kind": "synthetic-structure-case"},
        md={},
        timestep_fs=1.0,
        sample_interval_steps=max(1, round(frame_ps * 1000)),
        frame_interval_ps=frame_ps,
        status="running",
        box_length_A=case.box_A,
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    writer = TrajectoryWriter(stores.data, tid, len(case.symbols), chunk_frames=100)
    for f in range(case.n_frames):
        writer.append(case.positions[f], case.cell, float(case.times_ps[f]), 0.0, 298.15)
    writer.flush()
    doc = doc.model_copy(
        update={
            "status": "completed",
            "n_frames": writer.n_frames,
            "n_chunks": writer.n_chunks,
            "duration_ps": float(case.times_ps[-1] - case.times_ps[0]),
        }
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    return doc
