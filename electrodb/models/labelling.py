"""Training data: perturb configurations around equilibrium and label them with a teacher calculator.

Pure functions (numpy + ASE), no subprocess and no workflow code; the labelled configurations feed
:func:`electrodb.models.mace_train.train_mace` and the jobflow Makers of :mod:`electrodb.flows.training`.

1. :func:`perturb_configurations` — Gaussian atomic displacements and small cell strains around a set of
   structures (diversity around equilibrium; 0.02–0.07 Å trained well, ≥ 0.1 Å did not, for water/salt).
2. :func:`label_configurations` — reference energy (eV), forces (eV/Å) and stress (eV/Å³) from a teacher
   calculator, stored under ``info['REF_energy']``, ``arrays['REF_forces']``, ``info['REF_stress']``
   (:data:`ENERGY_KEY`, :data:`FORCES_KEY`, :data:`STRESS_KEY`: the keys ``mace_run_train`` is told to read).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ase import Atoms

__all__ = [
    "ENERGY_KEY",
    "FORCES_KEY",
    "STRESS_KEY",
    "LabelledConfigurations",
    "label_configurations",
    "perturb_configurations",
]

log = logging.getLogger(__name__)

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"
STRESS_KEY = "REF_stress"


def perturb_configurations(
    structures: Sequence[Atoms],
    n_per_structure: int,
    displacement_A: tuple[float, float] = (0.02, 0.07),
    strain: float = 0.02,
    seed: int | None = 0,
    max_sigmas: float = 4.0,
) -> list[Atoms]:
    r"""Random perturbations of each structure.

    For each copy a width :math:`\sigma \sim U(\sigma_\min, \sigma_\max)` is drawn and every Cartesian
    coordinate is shifted by :math:`\delta \sim N(0, \sigma^2)`, truncated at ``max_sigmas``·σ. Periodic cells
    (rank 3) are first strained along x, y, z independently, :math:`h' = h\,(I + \mathrm{diag}(\epsilon))`
    with :math:`\epsilon_i \sim U(-s, s)`, atoms following in scaled coordinates. Each copy records
    ``info['perturb_sigma_A']`` and ``info['perturb_source']`` (index of the input structure).

    Parameters
    ----------
    structures
        Reference structures (not modified).
    n_per_structure
        Copies per structure.
    displacement_A
        (min, max) of the Gaussian width σ (Å).
    strain
        Maximum absolute axial strain s (dimensionless, 0.02 = ±2 %); 0 disables.
    seed
        Seed of ``numpy.random.default_rng``.
    max_sigmas
        Truncation of each displacement component, in units of that copy's σ.

    Returns
    -------
    list of Atoms
        ``len(structures) * n_per_structure`` new structures, without calculators.
    """
    lo, hi = float(displacement_A[0]), float(displacement_A[1])
    if not 0.0 <= lo <= hi:
        raise ValueError(f"displacement_A must satisfy 0 <= min <= max, got {displacement_A}")
    if not 0.0 <= strain < 1.0:
        raise ValueError(f"strain must be in [0, 1), got {strain}")
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for index, atoms in enumerate(structures):
        for _ in range(int(n_per_structure)):
            new = atoms.copy()
            new.calc = None
            if strain > 0.0 and new.cell.rank == 3:
                eps = rng.uniform(-strain, strain, size=3)
                new.set_cell(np.asarray(new.cell) @ np.diag(1.0 + eps), scale_atoms=True)
            sigma = rng.uniform(lo, hi)
            delta = np.clip(rng.normal(0.0, sigma, size=(len(new), 3)), -max_sigmas * sigma, max_sigmas * sigma)
            new.positions = new.positions + delta
            new.info["perturb_sigma_A"] = float(sigma)
            new.info["perturb_source"] = int(index)
            out.append(new)
    return out


class LabelledConfigurations(list):
    """A ``list`` of labelled Atoms that also reports what was skipped.

    Attributes
    ----------
    n_skipped : int
        Configurations rejected (non-finite labels, forces above the bound, or calculator errors).
    skipped : list of (int, str)
        Index in the input list and reason, for each rejected configuration.
    """

    def __init__(self, items: Sequence[Atoms] = (), skipped: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(items)
        self.skipped: list[tuple[int, str]] = list(skipped)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def label_configurations(
    atoms_list: Sequence[Atoms],
    calculator: Any,
    progress: Callable[[int, int], None] | None = None,
    *,
    max_force_eV_per_A: float = 50.0,
    compute_stress: bool = True,
) -> LabelledConfigurations:
    """Label configurations with reference energies, forces and (if available) stresses.

    Stores ``info['REF_energy']`` (eV), ``arrays['REF_forces']`` (eV/Å) and, for periodic cells when the
    calculator implements it, ``info['REF_stress']`` (Voigt xx, yy, zz, yz, xz, xy; eV/Å³): the keys that
    ``mace_run_train --energy_key REF_energy --forces_key REF_forces --stress_key REF_stress`` reads.

    A configuration is skipped (and counted in ``result.skipped``) if the calculator raises, if any label is
    not finite, or if an atomic force norm exceeds ``max_force_eV_per_A``.

    Parameters
    ----------
    atoms_list
        Configurations (not modified; labelled copies are returned).
    calculator
        ASE calculator used for all configurations.
    progress
        Called as ``progress(i_done, n_total)`` after each configuration.
    max_force_eV_per_A
        Largest accepted atomic force norm (eV/Å).
    compute_stress
        Also store stresses when possible.

    Returns
    -------
    LabelledConfigurations
        Labelled copies without calculators, in input order, skipped ones left out.

    Raises
    ------
    ValueError
        If every configuration was rejected (the first reason is quoted).
    """
    labelled: list[Atoms] = []
    skipped: list[tuple[int, str]] = []
    n_total = len(atoms_list)
    can_stress = compute_stress and "stress" in getattr(calculator, "implemented_properties", ())
    for i, atoms in enumerate(atoms_list):
        work = atoms.copy()
        work.calc = calculator
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces(), dtype=float)
            stress = None
            if can_stress and work.pbc.all() and work.cell.rank == 3:
                stress = np.array(work.get_stress(voigt=True), dtype=float)
        except Exception as exc:  # a teacher failing on one geometry should not stop the batch
            skipped.append((i, f"calculator error: {type(exc).__name__}: {exc}"))
        else:
            fmax = float(np.max(np.linalg.norm(forces, axis=1))) if len(forces) else 0.0
            if not (math.isfinite(energy) and np.all(np.isfinite(forces))) or (
                stress is not None and not np.all(np.isfinite(stress))
            ):
                skipped.append((i, "non-finite energy, forces or stress"))
            elif fmax > max_force_eV_per_A:
                skipped.append((i, f"max |F| = {fmax:.3g} eV/Å > {max_force_eV_per_A} eV/Å"))
            else:
                work.calc = None
                work.info[ENERGY_KEY] = energy
                work.arrays[FORCES_KEY] = forces
                if stress is not None:
                    work.info[STRESS_KEY] = stress
                labelled.append(work)
        finally:
            work.calc = None
        if progress is not None:
            progress(i + 1, n_total)
    if skipped:
        log.warning("label_configurations: skipped %d of %d configurations (%s)", len(skipped), n_total, skipped[0][1])
    if n_total and not labelled:
        raise ValueError(f"all {n_total} configurations were rejected; first: {skipped[0][1]}")
    return LabelledConfigurations(labelled, skipped)
