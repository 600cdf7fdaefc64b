"""Reproduce the published LiCl NNP-MD of Zhang et al. through ElectroDB's own path, and compare.

The published model (``shared/external/zhang2023-licl-nequip/licl-l3-deployed.pth``; Zhang, Pagotto, Gould &
Duignan, arXiv:2310.12535; NequIP, species O H Li Cl, r_max 5 Å, trained with the ion–ion Coulomb removed) runs
as an ElectroDB campaign exactly as a user would run it:

* ``model: nequip:<path>``, ``long_range: {charges: ions, epsilon_r: 78.3, method: pme, cutoff_A: 10}`` (their
  ions-only Coulomb screened by water's ε_r, PPPM with 10 Å real-space cutoff; our PME converges to the same
  Ewald sum), thermostat Nosé–Hoover chain (``--thermostat bussi`` also allowed) at 300 K, 0.5 fs,
  ``npt: false`` (the model has no stress output; the box keeps the experimental density of ElectroDB's table);
* the authors' ion/water ratios, 12 and 24 LiCl per 512 H₂O ("1.2 M" and "2.4 M"), given as molalities
  m = n_salt / (n_w M_w) so ElectroDB's rounding returns exactly their counts for 512 waters;
* ``electrodb.flows.campaign.run_campaign`` then ``electrodb.builders.run_builders``; the numbers printed are
  read back from ``stores.structure`` (first shells), ``stores.electrolytes`` (D with status) and
  ``stores.thermo`` (a_cc with status).

Beside them: first peaks, first minima and CNs of the authors' g(r) files (same shell finder,
``electrodb.analysis.shells.first_minimum``, CN = 4π ρ_b' ∫_0^{r_min} g r² dr with ρ_b' = (N_b − δ_ab)/V, the
ElectroDB normalisation), the authors' a_cc recipe (``benchmarks/licl_kb_authors.py``) and the experimental
1 + d ln y±/d ln c at the box molarity. A value whose status is not ``converged`` is printed as its status and
reason, never as a plain number.

Before the campaign the script times a few MD steps of the same calculator on the same box (NNP + PME) and, on
the CPU default, chooses the production length from that measurement and ``--budget-s``.

Runs:

* CPU default (minutes): 64 waters + 3 LiCl (the authors' 2.4 M ratio), a production run fitted to
  ``--budget-s``: a smoke test of the whole chain, nothing in it converges;
* ``--full`` (with ``--device cuda``): the authors' boxes, 512 waters, both concentrations, ``--production-ps``
  (default 100 ps) each.

``.venv/bin/python benchmarks/reproduce_licl.py [--data-dir DIR] [--device cpu|cuda] [--full]``
(``OMP_NUM_THREADS`` sets the CPU threads). Not a test: ``benchmarks/`` is outside pytest's ``testpaths``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "external" / "zhang2023-licl-nequip"
MODEL = DATA / "licl-l3-deployed.pth"
N_WATERS_AUTHORS = 512
#: (label, LiCl per 512 waters, the authors' box edge Å, file tag)
CONCENTRATIONS = (("1.2 M", 12, 25.05, "1p2M"), ("2.4 M", 24, 25.26, "2p4M"))
LONG_RANGE = {"charges": "ions", "epsilon_r": 78.3, "method": "pme", "cutoff_A": 10.0}
TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
#: ElectroDB shell pair -> (row label, authors' file column)
SHELL_PAIRS = (
    ("cation-O_w", "Li–O", 4),
    ("anion-O_w", "Cl–O", 5),
    ("cation-anion", "Li–Cl", 2),
    ("cation-cation", "Li–Li", 1),
)
WATER_MOLAR_MASS_KG = 0.01801528


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=None, help="ELECTRODB_DATA_DIR (default: a temporary folder)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device of the NNP and PME")
    p.add_argument("--full", action="store_true", help="the authors' boxes: 512 waters, 1.2 and 2.4 M")
    p.add_argument("--n-waters", type=int, default=None, help="waters per box (default 64, or 512 with --full)")
    p.add_argument(
        "--concentrations",
        nargs="+",
        choices=[c[0].split()[0] for c in CONCENTRATIONS],
        default=None,
        help="which of the authors' ratios (default 2.4 on CPU, both with --full)",
    )
    p.add_argument(
        "--production-ps",
        type=float,
        default=None,
        help="production length per system (default: 100 ps with --full, else chosen from the timing)",
    )
    p.add_argument("--budget-s", type=float, default=150.0, help="CPU default: wall seconds for all MD steps")
    p.add_argument("--minimize-steps", type=int, default=15, help="CPU default: FIRE steps on the packed box")
    p.add_argument("--warmup-ps", type=float, default=0.01, help="CPU default: strong-friction Langevin warm-up")
    p.add_argument("--thermostat", choices=("nose-hoover-chain", "bussi"), default="nose-hoover-chain")
    p.add_argument("--timing-steps", type=int, default=2, help="MD steps timed before the campaign")
    p.add_argument("--timing-only", action="store_true", help="measure s/step and stop")
    return p.parse_args(argv)


def molality_of(n_salt: int, n_waters: int) -> float:
    """m = n_salt / (n_w M_w) (mol/kg): the authors' ion/water ratio as a molality."""
    return n_salt / (n_waters * WATER_MOLAR_MASS_KG)


def scaled_counts(n_salt_512: int, n_waters: int) -> int:
    """LiCl count that keeps the authors' ratio n_salt/512 in a box of ``n_waters`` (rounded)."""
    return max(1, round(n_salt_512 * n_waters / N_WATERS_AUTHORS))


def make_campaign(name: str, molalities: list[float], n_waters: int, md: dict, sample_every: int):
    from electrodb.systems.campaign import Campaign

    return Campaign.model_validate(
        {
            "name": name,
            "salts": ["LiCl"],
            "concentrations": molalities,
            "concentration_unit": "mol/kg",
            "temperatures": [TEMPERATURE_K],
            "size": {"n_waters": n_waters},
            "model": f"nequip:{MODEL}",
            "model_cutoff_A": 5.0,
            "long_range": LONG_RANGE,
            "md": {**md, "sample_every_steps": sample_every},
        }
    )


def time_md_steps(spec, n_steps: int) -> dict[str, float]:
    """Seconds per velocity-Verlet step of ElectroDB's calculator (NNP + PME) on the spec's packed box.

    The first call (TorchScript warm-up, PME parameters) is timed apart; then one split call of the NNP and the
    long-range term on the same configuration, then ``n_steps`` velocity-Verlet steps (one force call each).
    """
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    from electrodb.models.loader import load_model
    from electrodb.models.longrange import LongRangeCalculator
    from electrodb.models.reference import ModelRef
    from electrodb.systems.boxes import box_counts, pack_box

    counts = box_counts(spec.salt, spec.molality, "mol/kg", spec.temperature, n_waters=spec.n_waters)
    atoms = pack_box(counts, seed=spec.packing.seed, tolerance=spec.packing.tolerance_A).atoms
    loaded = load_model(ModelRef.parse(spec.model))
    calc = LongRangeCalculator.for_system(loaded.calculator(), spec.long_range, atoms, spec.salt)
    atoms.calc = calc
    t0 = time.perf_counter()
    atoms.get_forces()
    first = time.perf_counter() - t0
    probe = atoms.copy()
    probe.rattle(0.01, seed=2)  # a new configuration: the calculators' caches miss
    t0 = time.perf_counter()
    calc.base.get_property("forces", probe)
    t_nnp = time.perf_counter() - t0
    t0 = time.perf_counter()
    calc.long_range.get_property("forces", probe)
    t_lr = time.perf_counter() - t0
    MaxwellBoltzmannDistribution(atoms, temperature_K=spec.temperature, rng=np.random.default_rng(1))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, spec.md.timestep_fs * units.fs)
    t0 = time.perf_counter()
    dyn.run(n_steps)
    per_step = (time.perf_counter() - t0) / max(1, n_steps)
    return {
        "n_atoms": len(atoms),
        "box_A": float(atoms.cell.lengths()[0]),
        "first_call_s": first,
        "nnp_s": t_nnp,
        "long_range_s": t_lr,
        "s_per_step": per_step,
    }


# --------------------------------------------------------------------------------------------- the authors


def authors_shells(tag: str, box_length: float, n_salt: int) -> dict[str, dict[str, float]]:
    """First shell of each pair from the authors' g(r) file, with ElectroDB's shell finder.

    CN = 4π ρ_b' ∫_0^r g(s) s² ds (trapezoid on the 0.01 Å grid), ρ_b' = (N_b − δ_ab)/V with the authors' box
    (512 waters, ``n_salt`` LiCl, edge ``box_length``) — the normalisation of ``electrodb.analysis.structure``.
    """
    from electrodb.analysis.shells import first_minimum

    path = DATA / f"rdf_data_LiCl-out.lammpstrj-l3-bigbox-{tag}-run1.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the shared folder with the published LiCl data is missing")
    data = np.loadtxt(path)
    data = data[data[:, 0] <= box_length / 2]
    r = data[:, 0]
    volume = box_length**3
    partners = {"cation-O_w": N_WATERS_AUTHORS, "anion-O_w": N_WATERS_AUTHORS, "cation-anion": n_salt}
    partners["cation-cation"] = n_salt - 1
    out = {}
    for pair, _, col in SHELL_PAIRS:
        g = data[:, col]
        rho = partners[pair] / volume
        integrand = 4 * np.pi * rho * g * r**2
        cn = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
        s = first_minimum(r, g, cn_r=r, cn=cn)
        out[pair] = {"r_peak": s.r_peak, "g_peak": s.g_peak, "r_min": s.r_min, "cn": s.cn, "detection": s.detection}
    return out


def authors_reference(tag: str, box_length: float, n_salt: int) -> dict[str, float]:
    """a_cc of the authors' recipe (tail width 1 Å) and experiment at their box molarity."""
    sys.path.insert(0, str(HERE))
    from licl_kb_authors import authors_acc, authors_integrals, experiment_acc, load_box

    from electrodb.analysis.kirkwood_buff import MOL_PER_L_TO_PER_A3

    molarity = n_salt / (box_length**3 * MOL_PER_L_TO_PER_A3)
    r, g = load_box(tag, box_length)
    return {
        "molarity": molarity,
        "a_cc_authors": authors_acc(authors_integrals(r, g, 1.0), molarity),
        "a_cc_exp": experiment_acc(molarity),
    }


# ------------------------------------------------------------------------------------------------ printing


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def status_text(value: float | None, err: float | None, status: str | None, reason: str | None, digits: int = 2):
    """``1.23±0.04`` when converged, else ``[status] reason`` (never a bare number for an unconverged value)."""
    if status == "converged" and value is not None:
        return f"{value:.{digits}f}" + (f"±{err:.{digits}f}" if err else "")
    return f"[{status or 'missing'}] {reason or 'no reason recorded'}"


def report(stores, campaign, authors: dict[float, tuple[str, int, float, str]]) -> None:
    from electrodb.analysis.kirkwood_buff import MOL_PER_L_TO_PER_A3

    for spec in campaign.systems():
        label, n_salt_512, length_512, tag = authors[round(spec.molality, 6)]
        traj = stores.trajectories.query_one({"trajectory_id": spec.system_id}) or {}
        print()
        print(
            f"== LiCl {label} ratio: {spec.n_waters} H2O + {spec.n_cations} LiCl, m = {spec.molality:.3f} mol/kg, "
            f"L = {spec.box_length_A:.2f} Å (ElectroDB density {spec.density_kg_m3:.1f} kg/m³, "
            f"{spec.density_source}); authors: 512 H2O + {n_salt_512} LiCl, L = {length_512:.2f} Å"
        )
        print(
            f"run: status {traj.get('status')}, {traj.get('n_frames')} frames, {fmt(traj.get('duration_ps'), 3)} ps, "
            f"⟨T⟩ = {fmt(traj.get('mean_temperature_K'), 1)} ± {fmt(traj.get('temperature_err_K'), 1)} K "
            f"({traj.get('temperature_status')}: "
            f"{traj.get('temperature_reason') or traj.get('temperature_criterion')}), "
            f"{fmt(traj.get('wall_time_s'), 0)} s wall"
            + (f"; reason: {traj.get('status_reason')}" if traj.get("status_reason") else "")
        )
        if traj.get("status") != "completed":
            print(f"no properties: the run is {traj.get('status')} and never reaches the builders")
        structure = stores.structure.query_one({"trajectory_id": spec.system_id}) or {}
        ref = authors_shells(tag, length_512, n_salt_512)
        print(
            f"{'pair':6s} {'r_peak Å':>9s} {'(auth.)':>8s} {'g_peak':>7s} {'(auth.)':>8s} {'r_min Å':>8s} "
            f"{'(auth.)':>8s} {'CN':>6s} {'(auth.)':>8s}  CN status"
        )
        for pair, name, _ in SHELL_PAIRS:
            s = (structure.get("shells") or {}).get(pair, {})
            a = ref[pair]
            cn_text = fmt(s.get("cn")) if s.get("status") == "converged" else "n.c."
            print(
                f"{name:6s} {fmt(s.get('r_peak')):>9s} {fmt(a['r_peak']):>8s} {fmt(s.get('g_peak')):>7s} "
                f"{fmt(a['g_peak']):>8s} {fmt(s.get('r_min')):>8s} {fmt(a['r_min']):>8s} {cn_text:>6s} "
                f"{fmt(a['cn']):>8s}  [{s.get('status', 'missing')}] {s.get('reason') or s.get('detection_reason', '')}"
            )
        print("(peak positions and heights of a short run are estimates, not results: read them with the CN status)")
        elec = stores.electrolytes.query_one({"trajectory_ids": spec.system_id}) or {}
        for key, name in (("D_cation", "D(Li+)"), ("D_anion", "D(Cl-)"), ("D_water", "D(H2O)")):
            exp = elec.get(f"exp_{key}")
            text = status_text(
                elec.get(key), elec.get(f"{key}_err"), elec.get(f"{key}_status"), elec.get(f"{key}_reason")
            )
            print(f"{name:7s} (1e-9 m²/s, Yeh–Hummer corrected): {text}" + (f"   (exp {exp:.2f})" if exp else ""))
        ref_acc = authors_reference(tag, length_512, n_salt_512)
        molarity = spec.n_cations / (spec.box_length_A**3 * MOL_PER_L_TO_PER_A3)
        from licl_kb_authors import experiment_acc

        thermo = stores.thermo.query_one({"model_id": spec.model_id, "salt": "LiCl"}) or {}
        entry = next((s for s in thermo.get("systems", []) if s.get("trajectory_id") == spec.system_id), {})
        acc = status_text(
            entry.get("a_cc"), entry.get("a_cc_err"), entry.get("a_cc_status"), entry.get("a_cc_reason"), 3
        )
        if "a_cc" not in entry and entry.get("error"):
            acc = f"[{entry.get('a_cc_status', 'insufficient')}] {entry['error']}"
        print(f"a_cc (ElectroDB, c = {molarity:.3f} mol/L): {acc}")
        print(
            f"a_cc authors' g(r) (their recipe, tail 1 Å, c = {ref_acc['molarity']:.3f} mol/L): "
            f"{ref_acc['a_cc_authors']:.3f}; experiment: {ref_acc['a_cc_exp']:.3f} at {ref_acc['molarity']:.3f} "
            f"mol/L, {experiment_acc(molarity):.3f} at {molarity:.3f} mol/L"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not MODEL.exists():
        print(f"{MODEL} not found: the shared folder with the published LiCl model is missing", file=sys.stderr)
        return 2
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # ModelRef device 'auto' -> CPU
    else:
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: torch sees no CUDA device", file=sys.stderr)
            return 2
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="electrodb-licl-")
        args.data_dir = Path(tmp.name)
    os.environ["ELECTRODB_DATA_DIR"] = str(args.data_dir)

    import torch

    from electrodb.builders import run_builders
    from electrodb.flows.campaign import run_campaign
    from electrodb.store.stores import get_stores

    n_waters = args.n_waters or (N_WATERS_AUTHORS if args.full else 64)
    chosen = args.concentrations or (["1.2", "2.4"] if args.full else ["2.4"])
    authors: dict[float, tuple[str, int, float, str]] = {}
    molalities = []
    for label, n512, length, tag in CONCENTRATIONS:
        if label.split()[0] in chosen:
            m = molality_of(scaled_counts(n512, n_waters), n_waters)
            molalities.append(m)
            authors[round(m, 6)] = (label, n512, length, tag)
    print(
        f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); ELECTRODB_DATA_DIR={args.data_dir}"
    )
    md = {
        "timestep_fs": TIMESTEP_FS,
        "npt": False,
        "thermostat": args.thermostat,
        "thermostat_time_fs": 100.0,
        "seed": 1,
    }
    probe = make_campaign("licl-zhang2023", molalities, n_waters, md, 20).systems()
    timing = time_md_steps(probe[-1], args.timing_steps)
    print(
        f"timing ({timing['n_atoms']} atoms, L = {timing['box_A']:.2f} Å): first call {timing['first_call_s']:.2f} s; "
        f"one force call: NNP {timing['nnp_s']:.3f} s + PME {timing['long_range_s']:.3f} s; "
        f"{timing['s_per_step']:.3f} s per MD step ({args.timing_steps} velocity-Verlet steps)"
    )
    if args.timing_only:
        return 0
    s_step = timing["s_per_step"]
    if args.full:
        md |= {"minimize_steps": 100, "nvt_warmup_ps": 2.0, "nve_drift_steps": 2000}
        production_ps = args.production_ps or 100.0
        sample_every = 20
    else:
        # Smallest chain that still reaches every builder (20 frames: AnalysisSettings.min_frames). A packmol box
        # is strained: with 5 FIRE steps and no warm-up the first CPU run heated to 602 K within ~10 fs and was
        # stopped by the stability monitor, so 15 FIRE steps + 10 fs of strong-friction Langevin stay in.
        md |= {"minimize_steps": args.minimize_steps, "nvt_warmup_ps": args.warmup_ps, "nve_drift_steps": 0}
        overhead = md["minimize_steps"] + round(md["nvt_warmup_ps"] * 1000 / TIMESTEP_FS)
        steps = max(20, int(args.budget_s / s_step / len(molalities)) - overhead)
        production_ps = args.production_ps or math.floor(steps * TIMESTEP_FS) / 1000
        sample_every = max(1, round(production_ps * 1000 / TIMESTEP_FS) // 40)  # >= 20 frames for the builders
    n_prod = round(production_ps * 1000 / TIMESTEP_FS)
    md |= {"production_ps": production_ps}
    campaign = make_campaign("licl-zhang2023", molalities, n_waters, md, sample_every)
    total_steps = len(molalities) * (n_prod + md["minimize_steps"] + round(md["nvt_warmup_ps"] * 1000 / TIMESTEP_FS))
    print(
        f"run: {len(molalities)} system(s) of {n_waters} waters, production {production_ps:g} ps = {n_prod} steps "
        f"(frames every {sample_every} steps), {md['minimize_steps']} FIRE steps, warm-up {md['nvt_warmup_ps']} ps, "
        f"NVE drift check {md['nve_drift_steps']} steps; {args.thermostat} 300 K, 0.5 fs, npt false, "
        f"long_range {LONG_RANGE}; expected ≈ {total_steps * s_step:.0f} s of MD"
    )
    started = time.perf_counter()
    with get_stores() as stores:
        summary = run_campaign(campaign, stores)
        print(
            f"campaign: completed {len(summary.completed)}, unstable {len(summary.unstable)}, failed "
            f"{len(summary.failed)} of {summary.total} in {time.perf_counter() - started:.0f} s"
        )
        for sid, reason in summary.reasons.items():
            print(f"  {sid}: {reason}")
        counts = run_builders(stores)
        print(f"builders: {counts}")
        report(stores, campaign, authors)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
