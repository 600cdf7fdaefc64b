"""The MD engine under the jobflow Makers: minimisation, NPT density equilibration, NVT production with a
stability monitor, chunked trajectory output and checkpoint/resume, and the NVE energy-drift check of a model.

Everything here works on an ASE ``Atoms`` with any ASE calculator; the Makers in :mod:`electrodb.flows.md` add
stores, documents and provenance.

Thermostats (``MDSettings``; see ``docs/campaigns.md``, "MD settings"):

* warm-up: Langevin with strong friction ``warmup_friction_per_fs`` (default 0.05/fs, kinetic-energy
  relaxation time 1/(2γ) = 10 fs), so the heat a strained packed box releases is removed at once;
* production, default ``thermostat="bussi"``: canonical stochastic velocity rescaling (Bussi, Donadio &
  Parrinello, J. Chem. Phys. 126, 014101 (2007)) with time constant ``thermostat_time_fs`` (default 100 fs).
  It rescales all velocities by one factor, so it samples the canonical ensemble while leaving the dynamics
  (diffusion, velocity autocorrelation) essentially unperturbed over a wide range of τ (Bussi &
  Parrinello, Comput. Phys. Commun. 179, 26 (2008)). At steady state the thermostat must remove the power a
  model pumps in; it removes (K − K0)/τ, so a model drifting by ε̇ per atom runs hot by ΔT = ε̇ τ/(3/2 k_B)
  (:func:`electrodb.analysis.md_checks.thermostat_offset_K`), 5× less than under the old production Langevin
  0.001/fs, whose kinetic energy relaxes in 1/(2γ) = 500 fs;
* ``thermostat="langevin"``: friction ``friction_per_fs`` on every atom; it slows self-diffusion by about
  D/D0 = 1/(1 + M γ D0/k_BT) (additive friction; water, M = 18 g/mol: −1.6 % at 0.001/fs, −14 % at 0.01/fs).

Frame temperatures are the kinetic temperature of the motion relative to the centre of mass,
T = 2(K − |P|²/2M)/((3N − 3) k_B), unbiased whether or not the thermostat conserves the total momentum.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.nptberendsen import NPTBerendsen
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list
from ase.optimize import FIRE

from electrodb.analysis.md_checks import EnergyDrift, fit_energy_drift
from electrodb.store.frames import TrajectoryWriter
from electrodb.systems.campaign import MDSettings, StabilitySettings

__all__ = [
    "EquilibrationResult",
    "MDInstabilityError",
    "NVEDriftResult",
    "ProductionState",
    "StabilityMonitor",
    "equilibrate",
    "frame_stress",
    "kinetic_energy_relaxation_ps",
    "kinetic_temperature",
    "measure_nve_drift",
    "minimize",
    "run_production",
]

AMU_A3_TO_KG_M3 = 1.66053906660e-27 / 1e-30


class MDInstabilityError(RuntimeError):
    """The NNP trajectory left physical space (blow-up); carries the reason and the step."""

    def __init__(self, reason: str, step: int, last_good_frame: int | None = None) -> None:
        super().__init__(f"MD unstable at step {step}: {reason}")
        self.reason = reason
        self.step = step
        self.last_good_frame = last_good_frame


def density_kg_m3(atoms: Atoms) -> float:
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_A3_TO_KG_M3)


def kinetic_temperature(atoms: Atoms) -> float:
    """Kinetic temperature of the motion relative to the centre of mass (K).

    T = 2 (K − |P|²/(2M)) / ((3N − 3) k_B), with K the kinetic energy, P the total momentum and M the total
    mass. Equal to ``atoms.get_temperature()`` × 3N/(3N − 3) when P = 0 (velocity rescaling, NPT with fixcm),
    and an unbiased estimate also when the centre of mass moves thermally (Langevin with fixcm=False).
    """
    n = len(atoms)
    if n < 2:
        return float(atoms.get_temperature())
    momenta = atoms.get_momenta()
    total = momenta.sum(axis=0)
    ke = atoms.get_kinetic_energy() - float(total @ total) / (2.0 * atoms.get_masses().sum())
    return float(2.0 * ke / ((3 * n - 3) * units.kB))


def frame_stress(atoms: Atoms) -> np.ndarray | None:
    """Full (3, 3) stress with the kinetic (ideal-gas) term, eV/Å³ (ASE sign: P = −tr/3); None if unavailable.

    MACE computes the virial with every force call, so this costs nothing extra; calculators without stress
    (or boxes without a cell) give None and the frame stores NaN.
    """
    try:
        stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
    except Exception:  # PropertyNotImplementedError, a non-periodic box, a calculator that refuses stress
        return None
    stress = np.asarray(stress, dtype=float)
    return stress if stress.shape == (3, 3) else None


@dataclass
class StabilityMonitor:
    """Checks that an MD state is physical: finite, not too hot, no atoms fused, no huge forces."""

    settings: StabilitySettings
    target_temperature: float
    is_hydrogen: np.ndarray

    @classmethod
    def for_atoms(cls, atoms: Atoms, settings: StabilitySettings, temperature: float) -> StabilityMonitor:
        return cls(settings, temperature, np.array([s == "H" for s in atoms.get_chemical_symbols()]))

    def check(self, atoms: Atoms, step: int) -> None:
        s = self.settings
        positions = atoms.get_positions()
        if not np.isfinite(positions).all():
            raise MDInstabilityError("non-finite positions (NaN/inf)", step)
        forces = atoms.get_forces(md=True)
        if not np.isfinite(forces).all():
            raise MDInstabilityError("non-finite forces (NaN/inf)", step)
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
        if fmax > s.max_force_eV_A:
            raise MDInstabilityError(f"force {fmax:.1f} eV/Å exceeds {s.max_force_eV_A} eV/Å", step)
        temperature = atoms.get_temperature()
        if temperature > s.max_temperature_factor * self.target_temperature:
            raise MDInstabilityError(
                f"temperature {temperature:.0f} K exceeds {s.max_temperature_factor} × target "
                f"{self.target_temperature:.0f} K",
                step,
            )
        i, j, d = neighbor_list("ijd", atoms, max(s.min_distance_heavy_A, s.min_distance_h_A))
        with_h = self.is_hydrogen[i] | self.is_hydrogen[j]
        bad_h = with_h & (d < s.min_distance_h_A)
        bad_heavy = ~with_h & (d < s.min_distance_heavy_A)
        if bad_h.any() or bad_heavy.any():
            k = int(np.flatnonzero(bad_h | bad_heavy)[0])
            sym = atoms.get_chemical_symbols()
            raise MDInstabilityError(
                f"atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} Å apart", step
            )


def minimize(atoms: Atoms, steps: int, fmax: float) -> int:
    """FIRE minimisation of a freshly packed box (without it, packmol strain heats the box to ~750 K)."""
    if steps <= 0:
        return 0
    opt = FIRE(atoms, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return int(opt.nsteps)


def _attach_monitor(dyn: MolecularDynamics, monitor: StabilityMonitor, every: int, offset: int = 0) -> None:
    dyn.attach(lambda: monitor.check(dyn.atoms, offset + dyn.nsteps), interval=every)


def _initial_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)


@dataclass
class EquilibrationResult:
    """Outcome of the NPT stage: the density it settled at, with the block statistics."""

    density_kg_m3: float
    density_err_kg_m3: float
    converged: bool
    n_steps: int
    block_densities: list[float] = field(default_factory=list)
    box_length_A: float = 0.0
    wall_time_s: float = 0.0


def equilibrate(
    atoms: Atoms, md: MDSettings, temperature: float, log: Callable[[str], None] | None = None
) -> EquilibrationResult:
    """Minimise, warm up (Langevin, strong friction ``md.warmup_friction_per_fs``), then NPT (Berendsen) until
    the block-mean density settles.

    Convergence: the trajectory is cut into blocks of ``md.npt_block_ps``; NPT stops when two consecutive
    block means differ by less than ``md.density_tolerance`` (relative), after at least three blocks, or at
    ``md.npt_max_ps`` (then ``converged`` is False). The box is finally rescaled isotropically to the mean
    density of the last two blocks, with uncertainty = their standard error.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(md.seed)
    monitor = StabilityMonitor.for_atoms(atoms, md.stability, temperature)
    steps = minimize(atoms, md.minimize_steps, md.minimize_fmax_eV_A)
    _initial_velocities(atoms, temperature, rng)
    dt = md.timestep_fs * units.fs
    warm_steps = round(md.nvt_warmup_ps * 1000 / md.timestep_fs)
    if warm_steps:
        dyn = Langevin(
            atoms,
            dt,
            temperature_K=temperature,
            friction=md.warmup_friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
        _attach_monitor(dyn, monitor, md.stability.check_every_steps)
        dyn.run(warm_steps)
        steps += warm_steps
    if not md.npt:
        rho = density_kg_m3(atoms)
        return EquilibrationResult(
            rho, 0.0, True, steps, [], float(atoms.cell.lengths()[0]), time.perf_counter() - started
        )
    block_steps = max(1, round(md.npt_block_ps * 1000 / md.timestep_fs))
    max_blocks = max(3, math.ceil(md.npt_max_ps / md.npt_block_ps))
    dyn = NPTBerendsen(
        atoms,
        dt,
        temperature_K=temperature,
        pressure_au=md.pressure_bar * units.bar,
        taut=100 * units.fs,
        taup=md.barostat_time_ps * 1000 * units.fs,
        compressibility_au=md.compressibility_per_bar / units.bar,
        fixcm=True,
    )
    _attach_monitor(dyn, monitor, md.stability.check_every_steps, offset=steps)
    samples: list[float] = []
    dyn.attach(lambda: samples.append(density_kg_m3(atoms)), interval=max(1, block_steps // 20))
    blocks: list[float] = []
    converged = False
    for _ in range(max_blocks):
        samples.clear()
        dyn.run(block_steps)
        steps += block_steps
        blocks.append(float(np.mean(samples)))
        if log:
            log(f"NPT block {len(blocks)}: density {blocks[-1]:.1f} kg/m³")
        if len(blocks) >= 3 and abs(blocks[-1] - blocks[-2]) / blocks[-1] < md.density_tolerance:
            converged = True
            break
    last = np.array(blocks[-2:])
    target = float(last.mean())
    err = float(last.std(ddof=1) / math.sqrt(len(last))) if len(last) > 1 else 0.0
    scale = (density_kg_m3(atoms) / target) ** (1.0 / 3.0)
    atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    return EquilibrationResult(
        target, err, converged, steps, blocks, float(atoms.cell.lengths()[0]), time.perf_counter() - started
    )


@dataclass
class ProductionState:
    """Everything needed to continue a production run exactly where a checkpoint left it."""

    step: int
    n_frames: int
    n_chunks: int
    positions: np.ndarray
    momenta: np.ndarray
    cell: np.ndarray
    rng_state: dict[str, Any]
    timestep_fs: float


def kinetic_energy_relaxation_ps(md: MDSettings) -> float:
    """Relaxation time of the kinetic energy under the production thermostat (ps).

    ``thermostat_time_fs`` for Bussi and Nosé–Hoover chains; 1/(2γ) for Langevin (every momentum relaxes as
    exp(−γt), so the kinetic energy as exp(−2γt)). Used as the floor on the correlation time of the frame
    temperatures (:func:`electrodb.analysis.md_checks.check_temperature`) and in the drift → offset estimate.
    """
    if md.thermostat == "langevin":
        return 1.0 / (2.0 * md.friction_per_fs * 1000.0)
    return md.thermostat_time_fs / 1000.0


def _make_thermostat(
    atoms: Atoms, md: MDSettings, temperature: float, timestep_fs: float, rng: np.random.Generator
) -> MolecularDynamics:
    """The production integrator of ``md.thermostat`` (see the module docstring for what each does)."""
    dt = timestep_fs * units.fs
    if md.thermostat == "bussi":
        dyn = Bussi(atoms, dt, temperature_K=temperature, taut=md.thermostat_time_fs * units.fs, rng=rng)
        # Velocity rescaling keeps the total momentum (zeroed before production) at zero, so only 3N − 3
        # degrees of freedom are thermal: target their kinetic energy, not 3N/2 k_B T (0.5 % too hot at N = 194).
        if len(atoms) > 1:
            dyn.ndof = 3 * len(atoms) - 3
            dyn.target_kinetic_energy = 0.5 * dyn.temp * dyn.ndof
        return dyn
    if md.thermostat == "nose-hoover-chain":
        # Imported here, the one lazy import of this module: ASE added ase.md.nose_hoover_chain in 3.24, and
        # pyproject admits ase>=3.23, where only a run that chooses this thermostat should fail.
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=md.thermostat_time_fs * units.fs)
    return Langevin(atoms, dt, temperature_K=temperature, friction=md.friction_per_fs / units.fs, fixcm=False, rng=rng)


def checkpoint_interval(every_steps: int, n_steps: int, sample_every: int) -> int:
    """Steps between checkpoints: ``every_steps`` at most, but at least 10 per run, a multiple of ``sample_every``.

    A fixed 1,000-step interval never checkpointed a 400-step run, so a kill lost all of it.
    """
    wanted = min(every_steps, max(1, n_steps // 10))
    return max(sample_every, wanted // sample_every * sample_every)


def run_production(
    atoms: Atoms,
    md: MDSettings,
    temperature: float,
    writer: TrajectoryWriter,
    timestep_fs: float,
    sample_every: int,
    n_steps: int,
    resume: ProductionState | None = None,
    on_checkpoint: Callable[[ProductionState], None] | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """NVT production: sample every ``sample_every`` steps (frame 0 = the starting state), checkpoint every
    :func:`checkpoint_interval` steps (``md.checkpoint_every_steps`` at most, and at least ten checkpoints per run,
    on the sampling grid), stop on instability.

    Frame k is the state after k × ``sample_every`` steps, so a resumed run continues the same time grid with
    neither gap nor duplicate. Each frame stores positions, cell, time, potential energy, the centre-of-mass
    kinetic temperature (:func:`kinetic_temperature`) and the full stress with its kinetic part
    (:func:`frame_stress`, NaN when the calculator has none) — stress is sampled at the saved frames only, so
    a Green–Kubo viscosity needs a small ``sample_every_steps``. A fresh run first removes the centre-of-mass
    momentum. Returns the number of steps run in this call.
    """
    rng = np.random.default_rng(md.seed + 1)
    start_step = 0
    if resume is not None:
        atoms.set_cell(resume.cell)
        atoms.set_positions(resume.positions)
        atoms.set_momenta(resume.momenta)
        if resume.rng_state.get("bit_generator") == rng.bit_generator.state["bit_generator"]:
            rng.bit_generator.state = resume.rng_state
        else:  # a checkpoint of the batched (torch) path resumed here: a fresh, step-dependent stream
            rng = np.random.default_rng(md.seed + 1 + resume.step)
        start_step = resume.step
    else:
        Stationary(atoms)  # zero total momentum: velocity rescaling keeps it there
    monitor = StabilityMonitor.for_atoms(atoms, md.stability, temperature)
    dyn = _make_thermostat(atoms, md, temperature, timestep_fs, rng)
    checkpoint_every = checkpoint_interval(md.checkpoint_every_steps, n_steps, sample_every)
    frame_ps = sample_every * timestep_fs / 1000.0

    def sample() -> None:
        step = start_step + dyn.nsteps
        if resume is not None and dyn.nsteps == 0:
            return  # this frame was written before the checkpoint
        monitor.check(atoms, step)
        writer.append(
            atoms.get_positions(),
            np.asarray(atoms.cell),
            writer.next_frame * frame_ps,
            atoms.get_potential_energy(),
            kinetic_temperature(atoms),
            stress=frame_stress(atoms),
        )

    def checkpoint() -> None:
        if dyn.nsteps == 0:
            return
        writer.flush()
        if on_checkpoint:
            on_checkpoint(
                ProductionState(
                    start_step + dyn.nsteps,
                    writer.n_frames,
                    writer.n_chunks,
                    atoms.get_positions(),
                    atoms.get_momenta(),
                    np.asarray(atoms.cell),
                    rng.bit_generator.state,
                    timestep_fs,
                )
            )

    started = time.perf_counter()

    def progress() -> None:
        if on_progress and dyn.nsteps:
            on_progress(start_step + dyn.nsteps, n_steps, time.perf_counter() - started)

    if md.stability.check_every_steps < sample_every:
        _attach_monitor(dyn, monitor, md.stability.check_every_steps, offset=start_step)
    dyn.attach(sample, interval=sample_every)
    dyn.attach(checkpoint, interval=checkpoint_every)
    dyn.attach(progress, interval=max(sample_every, 50))
    remaining = n_steps - start_step
    if remaining > 0:
        dyn.run(remaining)
        # the end state too (on the frame grid), so a later segment continues from the last frame
        if dyn.nsteps % checkpoint_every and (start_step + dyn.nsteps) % sample_every == 0:
            checkpoint()
    writer.flush()
    return max(remaining, 0)


@dataclass
class NVEDriftResult:
    """Outcome of :func:`measure_nve_drift`: the fitted drift and the run it came from."""

    drift: EnergyDrift
    timestep_fs: float
    n_steps: int
    mean_temperature_K: float
    wall_time_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.drift.as_dict(),
            "timestep_fs": self.timestep_fs,
            "n_steps": self.n_steps,
            "mean_temperature_K": self.mean_temperature_K,
            "wall_time_s": self.wall_time_s,
        }


def measure_nve_drift(
    atoms: Atoms, timestep_fs: float, n_steps: int, temperature: float, seed: int = 1
) -> NVEDriftResult:
    """Velocity-Verlet NVE run of a copy of ``atoms`` (same calculator) and the drift of its total energy.

    The copy keeps the momenta of ``atoms`` (an equilibrated box), or starts from a Maxwell–Boltzmann
    distribution at ``temperature`` if it has none; ``atoms`` itself is not moved. The total energy is sampled
    every step and fitted by :func:`electrodb.analysis.md_checks.fit_energy_drift` (meV/atom/ps).

    Raises
    ------
    ValueError
        The run went non-finite (the fit refuses non-finite energies).
    """
    started = time.perf_counter()
    box = atoms.copy()
    box.calc = atoms.calc
    if not box.get_momenta().any():
        _initial_velocities(box, temperature, np.random.default_rng(seed))
    dyn = VelocityVerlet(box, timestep_fs * units.fs)
    times: list[float] = []
    energies: list[float] = []
    temps: list[float] = []

    def record() -> None:
        times.append(dyn.nsteps * timestep_fs / 1000.0)
        energies.append(box.get_potential_energy() + box.get_kinetic_energy())
        temps.append(kinetic_temperature(box))

    dyn.attach(record, interval=1)
    dyn.run(n_steps)
    drift = fit_energy_drift(np.array(times), np.array(energies), len(box))
    return NVEDriftResult(drift, timestep_fs, n_steps, float(np.mean(temps)), time.perf_counter() - started)
