"""Electrolyte boxes: salt + concentration + size -> integer counts, box length, packed periodic structure.

Counts. With N_w waters and molality m (mol/kg), the number of formula units is n = round(m N_w M_w), with
M_w = 0.01801528 kg/mol; the *actual* molality after rounding, n / (N_w M_w), is reported and used downstream.
A target atom count A instead of N_w solves 3 N_w + n a_f = A with a_f atoms per formula unit.

Box length. L = (M_total / ρ)^{1/3} with ρ the solution density at the campaign's temperature from Laliberté's
density model (M. Laliberté & W. E. Cooper, J. Chem. Eng. Data 49, 1141 (2004); parameters of 109 salts in
Laliberté, J. Chem. Eng. Data 54, 1725 (2009), the table ``chemicals`` ships), evaluated with
``thermo.electrochem.Laliberte_density`` inside the salt's fitted range of temperature and mass fraction
(:func:`laliberte_density`). Where it does not cover a point, the 25 °C table ``data/density_25C.csv``
(Laliberté preferred, Krumgalz otherwise; linear interpolation in molality, pure water 997.05 kg/m³ at m = 0),
and beyond that a documented estimate, ρ ≈ (1000 + m M_salt) / (1000/ρ_w + m V_salt) g/cm³, with
V_salt = Σ ν_i V_i and V_i = N_A (4/3)π r_i³ from the Shannon radius (monatomic ions, pymatgen's table) or the
sum of Bondi van der Waals spheres of the template atoms (molecular ions). For the tabulated salts this
estimate is within 5 % of the data up to 6 mol/kg; the NPT equilibration corrects it either way. The table and
the estimate are 25 °C values (at 320 K a solution is 8–10 kg/m³ lighter), so they are used only where the
model is not; ``density_source`` records which gave each box.

Concentration limits. m must be positive and at most min(25 mol/kg, 55.51/ν mol/kg): beyond one water
per ion there is no solvent left to dissolve the ions (a hydrate melt, not a solution), and 25 mol/kg is above
the most concentrated water-in-salt electrolytes studied (21 mol/kg LiTFSI).
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, vdw_radii
from ase.io import read, write
from ase.neighborlist import neighbor_list
from scipy.optimize import brentq
from thermo import electrochem

from electrodb.systems.chemistry import AVOGADRO, WATER_MOLAR_MASS_KG, Ion, Salt, parse_salt, water_template

__all__ = [
    "ROLE_NAMES",
    "BoxCounts",
    "PackedSystem",
    "PackingError",
    "SystemError",
    "box_counts",
    "laliberte_density",
    "molality_from_molarity",
    "pack_box",
    "solution_density",
]

WATER_DENSITY_25C = 997.05  # kg/m³ (pure water, 25 °C)
MAX_MOLALITY = 25.0  # mol/kg
ROLE_NAMES = ("water_O", "water_H", "cation", "anion")
ROLE_CODES = {name: code for code, name in enumerate(ROLE_NAMES)}
DensitySource = Literal["Laliberte", "Krumgalz", "estimate"]


class SystemError(ValueError):
    """Bad system specification (concentration, size, temperature)."""


class PackingError(RuntimeError):
    """packmol failed or produced a box that violates the distance tolerance."""


# ------------------------------------------------------------------------------------------------ density


@lru_cache(maxsize=1)
def _density_table() -> dict[str, list[tuple[float, float, str]]]:
    table: dict[str, list[tuple[float, float, str]]] = {}
    with resources.files("electrodb.data").joinpath("density_25C.csv").open() as fh:
        for row in csv.DictReader(fh):
            for column, source in (
                ("density_Laliberte_kg_m3", "Laliberte"),
                ("density_Krumgalz_kg_m3", "Krumgalz"),
            ):
                if row[column]:
                    table.setdefault(row["salt"], []).append(
                        (float(row["molality_mol_per_kg"]), float(row[column]), source)
                    )
                    break
    return {k: sorted(v) for k, v in table.items()}


def _ion_volume_cm3_mol(ion: Ion) -> float:
    if ion.radius_A is not None:
        return AVOGADRO * 4.0 / 3.0 * math.pi * ion.radius_A**3 * 1e-24
    return AVOGADRO * sum(4.0 / 3.0 * math.pi * vdw_radii[atomic_numbers[s]] ** 3 for s in ion.symbols) * 1e-24


def _estimated_density(salt: Salt, molality: float) -> float:
    volume = salt.nu_cation * _ion_volume_cm3_mol(salt.cation) + salt.nu_anion * _ion_volume_cm3_mol(salt.anion)
    grams = 1000.0 + molality * salt.molar_mass
    return 1000.0 * grams / (1000.0 / (WATER_DENSITY_25C / 1000.0) + molality * volume)


@lru_cache(maxsize=1)
def _laliberte_rows() -> dict[str, tuple[str, float, float, float, float]]:
    """Formula → (CAS number, M g/mol, fitted T range min and max °C, largest fitted mass fraction) of every salt
    with density parameters in Laliberté's table (``chemicals``)."""
    table = electrochem.Laliberte_data
    rows: dict[str, tuple[str, float, float, float, float]] = {}
    for cas, row in table.iterrows():
        values = [float(row[c]) for c in ("c0", "c1", "c2", "c3", "c4", "MW", "Min T", "Max T", "Max w")]
        if np.isfinite(values).all():
            rows.setdefault(str(row["Formula"]), (str(cas), *values[5:]))  # type: ignore[arg-type]
    return rows


def laliberte_density(salt: Salt, molality: float, temperature: float = 298.15) -> float | None:
    """Density (kg/m³) of the aqueous solution from Laliberté's model at ``temperature`` (K), or ``None`` where
    the model does not cover it (salt not in the table, temperature or mass fraction outside its fit)."""
    row = _laliberte_rows().get(salt.formula)
    if row is None:
        return None
    cas, mw, t_min, t_max, w_max = row
    w = molality * mw / (1000.0 + molality * mw)
    if not (t_min - 1e-9 <= temperature - 273.15 <= t_max + 1e-9 and 0.0 <= w <= w_max + 1e-12):
        return None
    return float(electrochem.Laliberte_density(temperature, [w], [cas]))


def solution_density(salt: Salt, molality: float, temperature: float = 298.15) -> tuple[float, DensitySource]:
    """Solution density (kg/m³) at ``temperature`` (K) and where it came from: ``Laliberte`` (the model at that
    temperature, or its 25 °C table), ``Krumgalz`` (25 °C table) or ``estimate`` (25 °C); see the module text."""
    rho = laliberte_density(salt, molality, temperature)
    if rho is not None:
        return rho, "Laliberte"
    points = _density_table().get(salt.formula)
    if points and molality <= points[-1][0]:
        ms = np.array([0.0] + [p[0] for p in points])
        rhos = np.array([WATER_DENSITY_25C] + [p[1] for p in points])
        source = points[int(np.searchsorted(ms[1:], molality).clip(0, len(points) - 1))][2]
        return float(np.interp(molality, ms, rhos)), source  # type: ignore[return-value]
    return _estimated_density(salt, molality), "estimate"


def molality_from_molarity(salt: Salt, molarity: float, temperature: float = 298.15) -> float:
    """Convert c (mol/L) to m (mol/kg) by solving c = m ρ(m) / (1 + m M_salt) with the density above at
    ``temperature`` (K)."""
    if molarity <= 0:
        raise SystemError(f"concentration must be positive, got {molarity} mol/L")

    def residual(m: float) -> float:
        rho = solution_density(salt, m, temperature)[0] / 1000.0  # kg/L
        return m * rho / (1.0 + m * salt.molar_mass / 1000.0) - molarity

    upper = MAX_MOLALITY * 2
    if residual(upper) < 0:
        raise SystemError(f"{molarity} mol/L of {salt} is beyond any aqueous solution (> {upper} mol/kg)")
    return float(brentq(residual, 1e-9, upper, xtol=1e-10))


# ------------------------------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class BoxCounts:
    """Integer composition of a box and what it means physically."""

    salt: str
    n_formula: int
    n_cations: int
    n_anions: int
    n_waters: int
    n_atoms: int
    molality_requested: float  # mol/kg
    molality: float  # mol/kg, actual after rounding
    density_kg_m3: float
    density_source: DensitySource
    box_length_A: float
    temperature: float  # K

    @property
    def molarity(self) -> float:
        """Concentration in mol/L implied by the box volume."""
        return self.n_formula / AVOGADRO / (self.box_length_A**3 * 1e-27)


def _check_molality(salt: Salt, molality: float) -> None:
    if not np.isfinite(molality) or molality <= 0:
        raise SystemError(f"molality must be positive and finite, got {molality} mol/kg")
    limit = min(MAX_MOLALITY, 1.0 / (WATER_MOLAR_MASS_KG * salt.nu))
    if molality > limit:
        raise SystemError(
            f"{molality} mol/kg of {salt} exceeds the packing limit of {limit:.1f} mol/kg: beyond one water per "
            f"ion ({1.0 / (WATER_MOLAR_MASS_KG * salt.nu):.1f} mol/kg for ν = {salt.nu}) there is no solvent left, "
            f"and {MAX_MOLALITY} mol/kg is above the most concentrated water-in-salt electrolytes. "
            "Use a lower concentration."
        )


def box_counts(
    salt: Salt | str,
    concentration: float,
    unit: Literal["mol/kg", "mol/L"] = "mol/kg",
    temperature: float = 298.15,
    n_waters: int | None = None,
    target_atoms: int | None = None,
    min_box_length: float | None = None,
) -> BoxCounts:
    """Integer ion and water counts, the actual molality and the box length for one electrolyte.

    Parameters
    ----------
    salt
        ``Salt`` or formula (``"LiCl"``).
    concentration, unit
        Molality (mol/kg) or molarity (mol/L, converted with the density model).
    temperature
        K; must lie in 200–600 K (liquid water at 1 bar is 273–373 K; hotter states are used for training data).
    n_waters, target_atoms
        Size, given as exactly one of them.
    min_box_length
        Å; typically 2 × the NNP cutoff. A shorter box raises :class:`SystemError` with the size needed.
    """
    salt = parse_salt(salt) if isinstance(salt, str) else salt
    if not 200.0 <= temperature <= 600.0:
        raise SystemError(f"temperature {temperature} K is outside 200–600 K; give the temperature in kelvin")
    molality = concentration if unit == "mol/kg" else molality_from_molarity(salt, concentration, temperature)
    _check_molality(salt, molality)
    if (n_waters is None) == (target_atoms is None):
        raise SystemError("give the box size as exactly one of n_waters or target_atoms")
    if n_waters is None:
        assert target_atoms is not None
        n_waters = round(target_atoms / (3 + molality * WATER_MOLAR_MASS_KG * salt.atoms_per_formula))
    if n_waters < 1:
        raise SystemError(f"n_waters must be at least 1, got {n_waters}")
    n_formula = round(molality * n_waters * WATER_MOLAR_MASS_KG)
    if n_formula < 1:
        need = math.ceil(0.5 / (molality * WATER_MOLAR_MASS_KG))
        raise SystemError(
            f"{n_waters} waters hold no formula unit of {salt} at {molality} mol/kg; "
            f"use at least {need} waters (or a higher concentration)"
        )
    actual = n_formula / (n_waters * WATER_MOLAR_MASS_KG)
    density, source = solution_density(salt, actual, temperature)
    mass_kg = (n_waters * WATER_MOLAR_MASS_KG + n_formula * salt.molar_mass / 1000.0) / AVOGADRO
    length = (mass_kg / density) ** (1.0 / 3.0) * 1e10
    if min_box_length is not None and length < min_box_length:
        scale = (min_box_length / length) ** 3
        raise SystemError(
            f"box length {length:.2f} Å is shorter than {min_box_length:.2f} Å (2 × the NNP cutoff): atoms would "
            f"see their own periodic images. Use at least {math.ceil(n_waters * scale)} waters."
        )
    return BoxCounts(
        salt=salt.formula,
        n_formula=n_formula,
        n_cations=n_formula * salt.nu_cation,
        n_anions=n_formula * salt.nu_anion,
        n_waters=n_waters,
        n_atoms=n_waters * 3 + n_formula * salt.atoms_per_formula,
        molality_requested=molality,
        molality=actual,
        density_kg_m3=density,
        density_source=source,
        box_length_A=length,
        temperature=temperature,
    )


# ------------------------------------------------------------------------------------------------ packing


@dataclass
class PackedSystem:
    """A packed periodic box with per-atom labels.

    ``atoms.arrays`` carries ``mol_id`` (molecule index), ``role`` (index into :data:`ROLE_NAMES`:
    water_O, water_H, cation, anion) and ``ion_center`` (True on the atom representing each ion).
    Atoms are ordered cations, anions, waters (O, H, H).
    """

    counts: BoxCounts
    atoms: Atoms
    seed: int
    tolerance_A: float
    min_intermolecular_distance_A: float

    def structure(self):  # -> pymatgen Structure
        """pymatgen ``Structure`` with the labels as site properties."""
        from pymatgen.io.ase import AseAtomsAdaptor

        structure = AseAtomsAdaptor.get_structure(self.atoms)
        for name in ("mol_id", "role", "ion_center"):
            structure.add_site_property(name, [x.item() for x in self.atoms.arrays[name]])
        return structure


def _packmol_binary() -> str:
    import sys

    candidates = [Path(sys.executable).parent / "packmol", shutil.which("packmol")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise PackingError("packmol binary not found: install the 'packmol' PyPI package in this environment")


def _molecules(salt: Salt, counts: BoxCounts) -> list[tuple[Atoms, int, int, int]]:
    """(template, number, role code of its atoms, centre index) in packing order."""
    water = water_template()
    return [
        (salt.cation.atoms(), counts.n_cations, ROLE_CODES["cation"], salt.cation.center_index),
        (salt.anion.atoms(), counts.n_anions, ROLE_CODES["anion"], salt.anion.center_index),
        (water, counts.n_waters, -1, -1),
    ]


def min_intermolecular_distance(atoms: Atoms, cutoff: float) -> float:
    """Smallest distance (Å, periodic images included) between atoms of different molecules, or ``cutoff``."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    mol = atoms.arrays["mol_id"]
    inter = mol[i] != mol[j]
    return float(d[inter].min()) if inter.any() else cutoff


def pack_box(
    counts: BoxCounts,
    seed: int = 1,
    tolerance: float = 2.0,
    margin: float = 0.1,
    workdir: Path | None = None,
    nloop: int = 400,
) -> PackedSystem:
    """Pack ions and waters into a periodic cube with packmol (fixed seed -> identical boxes).

    packmol runs with tolerance + ``margin`` and periodic boundaries; afterwards every pair of atoms of
    different molecules (periodic images included) is checked to be at least ``tolerance`` Å apart. ``nloop`` is
    packmol's number of optimisation loops (its ``nloop``): fewer give up sooner on a box that cannot be packed.
    """
    if nloop < 1:
        raise ValueError(f"nloop must be >= 1 packmol loop, not {nloop}")
    salt = parse_salt(counts.salt)
    length = counts.box_length_A
    tmp = tempfile.TemporaryDirectory(prefix="electrodb-packmol-", dir=workdir)
    folder = Path(tmp.name)
    lines = [
        f"tolerance {tolerance + margin:.3f}",
        f"seed {seed}",
        "filetype xyz",
        "output packed.xyz",
        f"pbc 0. 0. 0. {length:.4f} {length:.4f} {length:.4f}",
        f"nloop {nloop}",
    ]
    molecules = _molecules(salt, counts)
    for k, (template, number, _, _) in enumerate(molecules):
        if number == 0:
            continue
        write(folder / f"mol{k}.xyz", template)
        lines += [
            f"structure mol{k}.xyz",
            f"  number {number}",
            f"  inside box 0. 0. 0. {length:.4f} {length:.4f} {length:.4f}",
            "end structure",
        ]
    (folder / "pack.inp").write_text("\n".join(lines) + "\n")
    with open(folder / "pack.inp") as stdin:  # packmol exits with code 2 when the input is piped as text
        proc = subprocess.run([_packmol_binary()], stdin=stdin, cwd=folder, capture_output=True, text=True, timeout=600)
    output = folder / "packed.xyz"
    if proc.returncode != 0 or "Success!" not in proc.stdout or not output.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        tmp.cleanup()
        raise PackingError(
            f"packmol could not pack {counts.n_atoms} atoms of {counts.salt} at {counts.molality:.3f} mol/kg into a "
            f"{length:.2f} Å box with tolerance {tolerance} Å (exit code {proc.returncode}). Try a smaller "
            f"tolerance or a larger box. packmol said:\n{tail}"
        )
    atoms = read(output)
    tmp.cleanup()
    atoms.set_cell([length, length, length])
    atoms.pbc = True
    mol_id, role, center = [], [], []
    mol = 0
    for template, number, role_code, center_index in molecules:
        for _ in range(number):
            for a, symbol in enumerate(template.get_chemical_symbols()):
                mol_id.append(mol)
                role.append(role_code if role_code >= 0 else ROLE_CODES["water_O" if symbol == "O" else "water_H"])
                center.append(a == center_index)
            mol += 1
    atoms.arrays["mol_id"] = np.array(mol_id, dtype=np.int32)
    atoms.arrays["role"] = np.array(role, dtype=np.int8)
    atoms.arrays["ion_center"] = np.array(center, dtype=bool)
    atoms.wrap()
    closest = min_intermolecular_distance(atoms, tolerance + margin + 0.5)
    if closest < tolerance - 1e-6:
        raise PackingError(
            f"packmol returned a box with atoms of different molecules {closest:.3f} Å apart, "
            f"closer than the tolerance {tolerance} Å; try another seed or a larger box"
        )
    return PackedSystem(
        counts=counts, atoms=atoms, seed=seed, tolerance_A=tolerance, min_intermolecular_distance_A=closest
    )
