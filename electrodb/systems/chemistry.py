"""Ion catalogue and salts: charges, masses, 3-D templates and stoichiometry from charge neutrality.

Every ion has a rigid starting geometry (the NNP relaxes it during equilibration) and a *centre atom* used
for ion-level analysis (RDFs, pairing): the ion itself for monatomic ions, the central atom otherwise
(N of NO3⁻, S of SO4²⁻, Cl of ClO4⁻, N of TFSI⁻/FSI⁻, S of OTf⁻, carboxyl C of acetate).

Adding an ion: append an :class:`Ion` to ``ION_CATALOGUE`` below (name, charge, template built from bond
lengths) and, if its formula should be recognised inside salt names, its formula aliases.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, covalent_radii
from pymatgen.core.periodic_table import Species

__all__ = [
    "ION_CATALOGUE",
    "ChemistryError",
    "Ion",
    "Salt",
    "get_ion",
    "parse_salt",
    "shannon_radius",
    "water_template",
]

AVOGADRO = 6.02214076e23
WATER_MOLAR_MASS_KG = 0.01801528  # kg/mol
TEMPLATE_BOND_FACTOR = 1.2  # bonded when d < factor × (sum of covalent radii), see Ion.bonds


class ChemistryError(ValueError):
    """Bad chemical input (unknown ion, non-neutral composition)."""


@dataclass(frozen=True)
class Ion:
    """An ion with a rigid 3-D template.

    Parameters
    ----------
    name
        Canonical name, e.g. ``"Li+"``, ``"SO4 2-"`` is written ``"SO4-2"`` (formula + charge sign/magnitude).
    formula
        Formula used in salt names (``"Li"``, ``"SO4"``, ``"TFSI"``).
    charge
        Formal charge in units of e.
    symbols, positions
        Template atoms and Cartesian positions (Å); the centre atom is at index ``center_index``.
    radius_A
        Shannon effective ionic radius (CN 6, Å) for monatomic ions; ``None`` for molecular ions, for which
        no single consistent radius table is shipped.
    aliases
        Extra spellings accepted in salt names (``"CF3SO3"`` for OTf).
    """

    name: str
    formula: str
    charge: int
    symbols: tuple[str, ...]
    positions: tuple[tuple[float, float, float], ...]
    center_index: int = 0
    radius_A: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mass(self) -> float:
        """Mass in g/mol (atomic mass units)."""
        return float(sum(atomic_masses[atomic_numbers[s]] for s in self.symbols))

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def is_cation(self) -> bool:
        return self.charge > 0

    def atoms(self) -> Atoms:
        """Template as ASE ``Atoms`` centred on the centre atom."""
        pos = np.asarray(self.positions, dtype=float)
        return Atoms(self.symbols, positions=pos - pos[self.center_index])

    def bonds(self, factor: float = TEMPLATE_BOND_FACTOR) -> list[tuple[int, int, float]]:
        """Covalent bonds of the template as ``(i, j, length Å)`` with ``i < j``.

        Atoms *i*, *j* are bonded when ``d_ij < factor (r_i + r_j)`` with ASE's covalent radii (Cordero 2008).
        For every catalogued template this recovers exactly the chemical bonds (S–O, S–N, S–C and C–F of TFSI⁻,
        N–O of NO₃⁻ …); the shortest non-bonded contact (O···O in a sulfonyl group, F···F in CF₃) lies above
        1.3 (r_i + r_j). Empty for monatomic ions.
        """
        pos = np.asarray(self.positions, dtype=float)
        radii = [covalent_radii[atomic_numbers[s]] for s in self.symbols]
        out = []
        for i in range(self.n_atoms):
            for j in range(i + 1, self.n_atoms):
                d = float(np.linalg.norm(pos[i] - pos[j]))
                if d < factor * (radii[i] + radii[j]):
                    out.append((i, j, d))
        return out

    def bonded_pairs(self) -> dict[tuple[str, str], float]:
        """Longest template bond (Å) per bonded element pair, keys as alphabetically sorted symbol pairs.

        ``get_ion("TFSI").bonded_pairs()`` has keys ``("C", "F")``, ``("C", "S")``, ``("N", "S")``, ``("O", "S")``;
        a cation–anion pair never occurs (templates hold one ion each).
        """
        pairs: dict[tuple[str, str], float] = {}
        for i, j, d in self.bonds():
            a, b = sorted((self.symbols[i], self.symbols[j]))
            pairs[(a, b)] = max(d, pairs.get((a, b), 0.0))
        return pairs


# --------------------------------------------------------------------------------------------- geometry


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _perpendicular_frame(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    trial = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    v = _unit(np.cross(u, trial))
    return v, np.cross(u, v)


def _tetrahedral_partners(u: np.ndarray, phase: float) -> list[np.ndarray]:
    """The three directions completing a tetrahedron whose fourth bond points along unit vector ``u``."""
    v, w = _perpendicular_frame(u)
    return [
        -u / 3.0
        + math.sqrt(8.0 / 9.0) * (math.cos(phase + k * 2 * math.pi / 3) * v + math.sin(phase + k * 2 * math.pi / 3) * w)
        for k in range(3)
    ]


class _Builder:
    """Places substituents around centres, choosing rotations that keep non-bonded atoms apart."""

    def __init__(self, symbol: str) -> None:
        self.symbols = [symbol]
        self.positions = [np.zeros(3)]

    def add(self, symbol: str, position: np.ndarray) -> int:
        self.symbols.append(symbol)
        self.positions.append(np.asarray(position, dtype=float))
        return len(self.symbols) - 1

    def add_tetrahedral(self, center: int, bonded_to: int, substituents: list[tuple[str, float]]) -> list[int]:
        """Add three substituents (symbol, bond length Å) tetrahedrally around ``center``."""
        c = self.positions[center]
        u = _unit(self.positions[bonded_to] - c)
        others = [p for i, p in enumerate(self.positions) if i not in (center, bonded_to)]
        best_phase, best_score = 0.0, -1.0
        for phase in np.linspace(0, 2 * math.pi / 3, 24, endpoint=False):
            trial = [c + d * b for d, (_, b) in zip(_tetrahedral_partners(u, phase), substituents, strict=True)]
            score = min((np.linalg.norm(t - o) for t in trial for o in others), default=10.0)
            if score > best_score:
                best_phase, best_score = phase, score
        dirs = _tetrahedral_partners(u, best_phase)
        return [self.add(s, c + d * b) for d, (s, b) in zip(dirs, substituents, strict=True)]

    def ion(self, name: str, formula: str, charge: int, **kw: object) -> Ion:
        return Ion(
            name,
            formula,
            charge,
            tuple(self.symbols),
            tuple(tuple(float(x) for x in p) for p in self.positions),
            **kw,
        )  # type: ignore[arg-type]


def shannon_radius(symbol: str, charge: int) -> float:
    """Shannon (1976) effective ionic radius of ``symbol`` with ``charge`` at coordination 6 (Å), from
    pymatgen's table (``Species.get_shannon_radius``)."""
    return float(Species(symbol, charge).get_shannon_radius("VI"))


def _monatomic(symbol: str, charge: int) -> Ion:
    sign = "+" if charge > 0 else "-"
    mag = "" if abs(charge) == 1 else str(abs(charge))
    radius = shannon_radius(symbol, charge)
    return Ion(f"{symbol}{mag}{sign}", symbol, charge, (symbol,), ((0.0, 0.0, 0.0),), radius_A=radius)


def _regular(center: str, ligand: str, bond: float, directions: np.ndarray) -> _Builder:
    b = _Builder(center)
    for d in directions:
        b.add(ligand, _unit(d) * bond)
    return b


_TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
_OCTA = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
_TRIGONAL = np.array([[1, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [-0.5, -math.sqrt(3) / 2, 0]])


def _sulfonyl_imide(tail: str) -> _Builder:
    """N(SO2X)2⁻ with X = F (FSI) or CF3 (TFSI); S–N 1.57 Å, S=O 1.43 Å, S–F 1.58 Å, S–C 1.83 Å, C–F 1.33 Å."""
    b = _Builder("N")
    half = math.radians(125.0 / 2)
    sulfurs = [b.add("S", 1.57 * np.array([s * math.sin(half), math.cos(half), 0.0])) for s in (1, -1)]
    for s in sulfurs:
        tail_bond = ("F", 1.58) if tail == "F" else ("C", 1.83)
        _, _, x = b.add_tetrahedral(s, 0, [("O", 1.43), ("O", 1.43), tail_bond])
        if tail == "CF3":
            b.add_tetrahedral(x, s, [("F", 1.33)] * 3)
    return b


def _triflate() -> _Builder:
    b = _Builder("S")
    c = b.add("C", np.array([0.0, 0.0, 1.83]))
    b.add_tetrahedral(0, c, [("O", 1.45)] * 3)
    b.add_tetrahedral(c, 0, [("F", 1.33)] * 3)
    return b


def _acetate() -> _Builder:
    b = _Builder("C")  # carboxyl carbon = centre
    for d in _TRIGONAL[:2]:
        b.add("O", d * 1.26)
    methyl = b.add("C", _TRIGONAL[2] * 1.52)
    b.add_tetrahedral(methyl, 0, [("H", 1.09)] * 3)
    return b


def _hydroxide() -> _Builder:
    b = _Builder("O")
    b.add("H", np.array([0.0, 0.0, 0.97]))
    return b


def _build_catalogue() -> dict[str, Ion]:
    ions = [
        # Shannon (1976) effective ionic radii at CN 6 come from pymatgen's table (shannon_radius).
        _monatomic("Li", 1),
        _monatomic("Na", 1),
        _monatomic("K", 1),
        _monatomic("Rb", 1),
        _monatomic("Cs", 1),
        _monatomic("Mg", 2),
        _monatomic("Ca", 2),
        _monatomic("Zn", 2),
        _monatomic("F", -1),
        _monatomic("Cl", -1),
        _monatomic("Br", -1),
        _monatomic("I", -1),
        _hydroxide().ion("OH-", "OH", -1),
        _regular("N", "O", 1.25, _TRIGONAL).ion("NO3-", "NO3", -1),
        _regular("Cl", "O", 1.44, _TETRA).ion("ClO4-", "ClO4", -1),
        _regular("S", "O", 1.49, _TETRA).ion("SO4 2-", "SO4", -2),
        _regular("B", "F", 1.39, _TETRA).ion("BF4-", "BF4", -1),
        _regular("P", "F", 1.60, _OCTA).ion("PF6-", "PF6", -1),
        _sulfonyl_imide("CF3").ion("TFSI-", "TFSI", -1, aliases=("NTf2", "N(SO2CF3)2")),
        _sulfonyl_imide("F").ion("FSI-", "FSI", -1, aliases=("N(SO2F)2",)),
        _triflate().ion("OTf-", "OTf", -1, aliases=("CF3SO3", "TfO")),
        _acetate().ion("CH3COO-", "OAc", -1, aliases=("CH3COO", "Ac", "acetate")),
    ]
    return {ion.name: ion for ion in ions}


ION_CATALOGUE: dict[str, Ion] = _build_catalogue()


def _lookup_table() -> dict[str, Ion]:
    table: dict[str, Ion] = {}
    for ion in ION_CATALOGUE.values():
        for key in (ion.name, ion.name.replace(" ", ""), ion.formula, *ion.aliases):
            table[key.lower()] = ion
    return table


_LOOKUP = _lookup_table()


def _known_ions_message() -> str:
    cations = ", ".join(i.name for i in ION_CATALOGUE.values() if i.is_cation)
    anions = ", ".join(i.name for i in ION_CATALOGUE.values() if not i.is_cation)
    return (
        f"known cations: {cations}; known anions: {anions}. To add an ion, append an Ion (name, "
        "formula, charge, template geometry) to ION_CATALOGUE in electrodb/systems/chemistry.py."
    )


def get_ion(name: str) -> Ion:
    """Look an ion up by name (``"Li+"``), formula (``"SO4"``) or alias (``"CF3SO3"``), case-insensitive."""
    key = name.strip().lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    stripped = re.sub(r"[\d\s]*[+-]+$", "", key)
    if stripped in _LOOKUP:
        return _LOOKUP[stripped]
    raise ChemistryError(f"unknown ion {name!r}: {_known_ions_message()}")


# ------------------------------------------------------------------------------------------------ salts


@dataclass(frozen=True)
class Salt:
    """A neutral salt ν₊ M^{z₊} + ν₋ X^{z₋} with ν₊ z₊ + ν₋ z₋ = 0 (smallest integers)."""

    cation: Ion
    anion: Ion

    def __post_init__(self) -> None:
        if self.cation.charge <= 0:
            raise ChemistryError(f"{self.cation.name} is not a cation; give the cation first")
        if self.anion.charge >= 0:
            raise ChemistryError(f"{self.anion.name} is not an anion; give the anion second")

    @classmethod
    def from_ions(cls, cation: str, anion: str) -> Salt:
        return cls(get_ion(cation), get_ion(anion))

    @cached_property
    def stoichiometry(self) -> tuple[int, int]:
        """(ν₊, ν₋) from charge neutrality."""
        zc, za = self.cation.charge, -self.anion.charge
        lcm = zc * za // math.gcd(zc, za)
        return lcm // zc, lcm // za

    @property
    def nu_cation(self) -> int:
        return self.stoichiometry[0]

    @property
    def nu_anion(self) -> int:
        return self.stoichiometry[1]

    @property
    def nu(self) -> int:
        """Ions per formula unit ν = ν₊ + ν₋."""
        return self.nu_cation + self.nu_anion

    @property
    def formula(self) -> str:
        """Canonical formula, e.g. ``"MgCl2"``, ``"Ca(NO3)2"``, ``"Li2SO4"``, ``"LiTFSI"``."""

        def part(ion: Ion, n: int) -> str:
            f = ion.formula
            if n == 1:
                return f
            return f"({f}){n}" if sum(c.isupper() for c in f) > 1 else f"{f}{n}"

        return part(self.cation, self.nu_cation) + part(self.anion, self.nu_anion)

    @property
    def molar_mass(self) -> float:
        """g/mol of one formula unit."""
        return self.nu_cation * self.cation.mass + self.nu_anion * self.anion.mass

    @property
    def atoms_per_formula(self) -> int:
        return self.nu_cation * self.cation.n_atoms + self.nu_anion * self.anion.n_atoms

    @property
    def elements(self) -> list[str]:
        return sorted({*self.cation.symbols, *self.anion.symbols, "H", "O"})

    def __str__(self) -> str:
        return self.formula


def _cation_tokens() -> list[tuple[str, Ion]]:
    keys = [(k, ion) for k, ion in _LOOKUP.items() if ion.is_cation and not k.endswith(("+", "-"))]
    return sorted(keys, key=lambda kv: -len(kv[0]))


def _split_anion(rest: str) -> tuple[str, int]:
    """Split the anion part of a salt formula into (anion key, count): ``"(no3)2"``, ``"cl2"``, ``"so4"``."""
    paren = re.fullmatch(r"\((.+)\)(\d*)", rest)
    if paren:
        return paren.group(1), int(paren.group(2) or 1)
    if rest in _LOOKUP:  # trailing digits that belong to the formula itself (SO4, NO3, ClO4)
        return rest, 1
    plain = re.fullmatch(r"(.+?)(\d*)", rest)
    return (plain.group(1), int(plain.group(2) or 1)) if plain else (rest, 1)


def parse_salt(text: str) -> Salt:
    """Parse a salt formula such as ``"LiCl"``, ``"MgCl2"``, ``"Li2SO4"``, ``"LiTFSI"``, ``"Ca(NO3)2"``.

    Also accepts ``"cation/anion"`` names (``"Li+/TFSI-"``). The written stoichiometry must match charge
    neutrality; otherwise a :class:`ChemistryError` names the neutral formula of those ions.
    """
    raw = text.strip()
    if "/" in raw:
        cation_name, anion_name = raw.split("/", 1)
        return Salt.from_ions(cation_name, anion_name)
    low = raw.lower().replace(" ", "")
    for key, cation in _cation_tokens():
        if not low.startswith(key):
            continue
        count = re.match(r"\d*", low[len(key) :])
        n_cat = int(count.group() or 1) if count else 1
        anion_key, n_an = _split_anion(low[len(key) + (count.end() if count else 0) :])
        anion = _LOOKUP.get(anion_key)
        if anion is None or anion.is_cation:
            continue
        salt = Salt(cation, anion)
        if (n_cat, n_an) != salt.stoichiometry:
            charge = n_cat * cation.charge + n_an * anion.charge
            raise ChemistryError(
                f"{raw!r} is not neutral ({n_cat}×{cation.name} + {n_an}×{anion.name} has charge {charge:+d}); "
                f"the neutral salt of these ions is {salt.formula}"
            )
        return salt
    raise ChemistryError(
        f"cannot parse salt {raw!r}: {_known_ions_message()} "
        "Write salts as formulas (LiCl, MgCl2, Ca(NO3)2, LiTFSI) or as 'cation/anion'."
    )


def water_template() -> Atoms:
    """Rigid water at the experimental gas-phase geometry (O–H 0.9572 Å, ∠HOH 104.52°); O at the origin."""
    half = math.radians(104.52 / 2)
    d = 0.9572
    return Atoms(
        "OH2",
        positions=[
            [0, 0, 0],
            [d * math.sin(half), d * math.cos(half), 0],
            [-d * math.sin(half), d * math.cos(half), 0],
        ],
    )
