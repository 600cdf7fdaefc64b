"""Delta learning: the long-range Coulomb term removed from the reference labels before training.

The long-range term of :mod:`electrodb.models.longrange` is subtracted from every reference energy, force and stress
(:func:`subtract_long_range`, charges from :func:`long_range_charges`), so that the NNP learns E_ref − E_LR and MD
adds E_LR back (``docs/long-range.md``). Used by :func:`electrodb.models.mace_train.train_mace` (``long_range=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from electrodb.models.longrange import atomic_charges, long_range_energy_forces
from electrodb.systems.chemistry import parse_salt

__all__ = ["LONG_RANGE_ENERGY_KEY", "long_range_charges", "subtract_long_range"]

#: ``info`` key of each delta-learning configuration holding the long-range energy that was subtracted (eV).
LONG_RANGE_ENERGY_KEY = "LR_energy"


def _element_charges(settings: Any, salts: Sequence[str]) -> dict[str, float]:
    """Charge (e) per element from the formal charges of the salts' monatomic ions (+ water for ``"all"``)."""
    out: dict[str, float] = {}
    for text in salts:
        salt = parse_salt(text)
        for ion in (salt.cation, salt.anion):
            if ion.n_atoms > 1:
                raise ValueError(
                    f"{ion.name} has {ion.n_atoms} atoms: per-element charges cannot tell its centre atom; the "
                    "configurations need atoms.arrays['role'] and ['ion_center'] (boxes from electrodb.systems.boxes)"
                )
            symbol = ion.symbols[0]
            if symbol in out and out[symbol] != ion.charge:
                raise ValueError(f"element {symbol} has charges {out[symbol]} and {ion.charge} in {list(salts)}")
            out[symbol] = float(ion.charge)
    water = settings.water_charges if settings.charges == "all" else {"O": 0.0, "H": 0.0}
    for symbol, charge in water.items():
        if symbol in out:
            raise ValueError(f"element {symbol} is both an ion and a water atom; give explicit charges")
        out[symbol] = float(charge)
    return out


def _salt_of(atoms: Atoms, salts: Sequence[str]) -> str | None:
    """The one salt of ``salts`` whose ion elements are all in ``atoms`` (None: none or ambiguous)."""
    present = set(atoms.get_chemical_symbols())
    found = [t for t in salts if set(parse_salt(t).cation.symbols + parse_salt(t).anion.symbols) <= present]
    return found[0] if len(found) == 1 else None


def long_range_charges(atoms: Atoms, settings: Any, salts: Sequence[str] | str | None = None) -> np.ndarray:
    """Charges (e) of one labelled configuration for the long-range term (delta learning).

    Uses :func:`electrodb.models.longrange.atomic_charges` when the configuration carries ElectroDB's box labels
    (``arrays['role']``; ``ion_center`` for molecular ions) or when ``settings.charges`` is a dict. Without
    labels (e.g. extxyz written before the labels were kept) the charges come per element from the formal
    charges of ``salts`` (one or several formulas: ``"LiCl"``, ``["NaCl", "LiCl"]``; with labels and several
    salts, the one salt whose elements the configuration holds is used): monatomic ions only; O and
    H are water (0 e for ``charges="ions"``, ``settings.water_charges`` for ``"all"``). Without
    ``arrays['mol_id']`` the intramolecular exclusion cannot be applied, so a charge on any O or H is refused
    (unless ``settings.exclude_intramolecular`` is False).
    """
    salt_list = [salts] if isinstance(salts, str) else list(salts or [])
    if isinstance(settings.charges, dict):
        charges = atomic_charges(atoms, settings)
    elif "role" in atoms.arrays and _salt_of(atoms, salt_list) is not None:
        charges = atomic_charges(atoms, settings, _salt_of(atoms, salt_list))
    else:
        if not salt_list:
            raise ValueError(
                f"charges={settings.charges!r}: the configuration has no atoms.arrays['role'], so give the salt(s) "
                "(per-element formal charges, e.g. salt='LiCl') or a dict of charges per element"
            )
        table = _element_charges(settings, salt_list)
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(table))
        if unknown:
            raise ValueError(f"no charge for element(s) {unknown} from salt(s) {salt_list} and water")
        charges = np.array([table[s] for s in symbols], dtype=float)
    if settings.exclude_intramolecular and "mol_id" not in atoms.arrays:
        symbols = np.asarray(atoms.get_chemical_symbols())
        if np.any((charges != 0) & np.isin(symbols, ["O", "H"])):
            raise ValueError(
                "charged O/H atoms but no atoms.arrays['mol_id']: intramolecular pairs cannot be excluded as in MD; "
                "use boxes from electrodb.systems.boxes (they carry mol_id) or charges='ions'"
            )
    return charges


def subtract_long_range(
    configurations: Sequence[Atoms],
    settings: Any,
    salts: Sequence[str] | str | None = None,
) -> list[Atoms]:
    r"""Copies of labelled configurations with the long-range term removed from their labels (delta learning).

    .. math::

        E^{\mathrm{target}} = E_\mathrm{ref} - E_\mathrm{LR},\quad
        \mathbf F^{\mathrm{target}} = \mathbf F_\mathrm{ref} - \mathbf F_\mathrm{LR},\quad
        \sigma^{\mathrm{target}} = \sigma_\mathrm{ref} - \sigma_\mathrm{LR}

    with :func:`electrodb.models.longrange.long_range_energy_forces` (eV, eV/Å, eV/Å³ in ASE's Voigt order and sign)
    for the charges of :func:`long_range_charges`. The stress is subtracted only where ``REF_stress`` exists.
    The subtracted energy is kept in ``info['LR_energy']`` (eV). Inputs are not modified.

    Parameters
    ----------
    configurations
        Periodic Atoms with ``info['REF_energy']`` and ``arrays['REF_forces']``.
    settings
        :class:`electrodb.models.longrange.LongRangeSettings` (the same that MD will use).
    salts
        Salt formula(s) for the formal ion charges (see :func:`long_range_charges`).
    """
    out = []
    for k, atoms in enumerate(configurations):
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            raise ValueError(f"configuration {k} has no {ENERGY_KEY}/{FORCES_KEY} labels")
        if not all(atoms.pbc):
            raise ValueError(f"configuration {k} is not periodic in 3-D: the long-range term needs a box")
        charges = long_range_charges(atoms, settings, salts)
        want_stress = STRESS_KEY in atoms.info
        energy, forces, stress = long_range_energy_forces(atoms, charges, settings, compute_stress=want_stress)
        copy = atoms.copy()
        copy.calc = None
        copy.info[ENERGY_KEY] = float(atoms.info[ENERGY_KEY]) - energy
        copy.arrays[FORCES_KEY] = np.asarray(atoms.arrays[FORCES_KEY], dtype=float) - forces
        if want_stress and stress is not None:
            ref = np.asarray(atoms.info[STRESS_KEY], dtype=float).reshape(-1)
            if ref.size == 9:  # a 3x3 tensor: to Voigt (xx, yy, zz, yz, xz, xy)
                ref = ref[[0, 4, 8, 5, 2, 1]]
            copy.info[STRESS_KEY] = ref - stress
        copy.info[LONG_RANGE_ENERGY_KEY] = energy
        out.append(copy)
    return out
