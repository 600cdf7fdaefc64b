"""Recognising the waters and ions of a salt-in-water frame: :func:`assign_molecules`.

Used by :mod:`electrodb.io.ingest` on the first frame of an external trajectory, to give every atom its molecule,
role and ion centre (the per-atom topology ElectroDB's own MD stores); :func:`identify_composition` adds the counts
and checks the stated molality.

1. Waters: every H joins its nearest heavy atom within 1.25 Å; an O holding two such H is a water. An
   oxyanion's O has no H within 1.25 Å, so it is never taken as a water, and a water O never enters an ion.
2. Ions: the remaining atoms are bonded only along the element pairs that are bonded in the salt's own ion
   templates (:meth:`electrodb.systems.chemistry.Ion.bonded_pairs`: S–O in SO₄²⁻; S–O, S–N, S–C, C–F in TFSI⁻), up to
   ``bond_tolerance`` × the template bond length. A cation–anion pair is never a bond, so contact ion pairs
   (Li–Cl 2.35 Å, Li–O(TFSI) 1.95 Å), cation dimers (Li–Li 2.68 Å) and aggregates are read as separate ions.
   Monatomic ions are their own group. Each group must match a template's composition.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from electrodb.io.ingest_checks import IngestError
from electrodb.systems.boxes import ROLE_CODES
from electrodb.systems.chemistry import WATER_MOLAR_MASS_KG, Ion, Salt

__all__ = ["BOND_TOLERANCE", "WATER_OH_CUTOFF_A", "Composition", "assign_molecules", "identify_composition"]

WATER_OH_CUTOFF_A = 1.25  # an H belongs to a water O closer than this
BOND_TOLERANCE = 1.25  # intra-ion bond: d < tolerance × template bond length


def _formula(symbols: list[str] | np.ndarray) -> str:
    return "".join(f"{s}{c if c > 1 else ''}" for s, c in sorted(Counter(symbols).items()))


def _allowed_bonds(salt: Salt, tolerance: float) -> dict[tuple[str, str], float]:
    """Bonded element pair -> longest allowed bond (Å) in a frame, from the salt's ion templates."""
    allowed: dict[tuple[str, str], float] = {}
    for ion in (salt.cation, salt.anion):
        for pair, length in ion.bonded_pairs().items():
            allowed[pair] = max(allowed.get(pair, 0.0), tolerance * length)
    return allowed


def _neighbour_signature(ion: Ion, index: int) -> tuple[str, ...]:
    bonded = [ion.symbols[j if i == index else i] for i, j, _ in ion.bonds() if index in (i, j)]
    return tuple(sorted(bonded))


def _diagnose(members: np.ndarray, symbols: np.ndarray, salt: Salt, n_h: dict[int, int]) -> str:
    found = Counter(symbols[members].tolist())
    hints = []
    if len(members) == 1 and symbols[members[0]] == "O" and n_h.get(int(members[0]), 0) == 1:
        hints.append("an O with a single H within 1.25 Å: a water with a missing or displaced H")
    for ion in (salt.cation, salt.anion):
        want = Counter(ion.symbols)
        if found == want:
            continue
        if all(found[s] <= want[s] for s in found) and set(found) <= set(want) and ion.n_atoms > 1:
            missing = _formula(list((want - found).elements()))
            hints.append(f"an incomplete {ion.name} (missing {missing}, or bonds stretched beyond tolerance)")
        elif all(found[s] >= want[s] for s in want) and ion.n_atoms > 1:
            hints.append(f"more than one {ion.name} or extra atoms bonded together")
    hint = f" — looks like {'; '.join(hints)}" if hints else ""
    return (
        f"atoms {members[:5].tolist()}{'…' if len(members) > 5 else ''} form {_formula(symbols[members])}, which is "
        f"neither water nor an ion of {salt} ({salt.cation.name}, {salt.anion.name}){hint}; check --salt, the "
        "file's element order, or whether the file holds all atoms"
    )


def assign_molecules(
    atoms: Atoms, salt: Salt, bond_tolerance: float = BOND_TOLERANCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-atom (mol_id, role code, ion_center) for a frame of ``salt`` in water.

    Waters first (O with two H within 1.25 Å, each H given to its nearest heavy atom); the other atoms are
    bonded only along element pairs bonded in the salt's ion templates, up to ``bond_tolerance`` × the template
    bond length, and every bonded group must have the composition of one of the salt's ions.

    Raises :class:`IngestError` for non-finite coordinates, elements foreign to the salt and water, groups
    that are neither water nor an ion (with a hint: incomplete ion, broken water), or ion counts that break
    the salt's stoichiometry.
    """
    pos = atoms.get_positions()
    if not np.isfinite(pos).all():
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        raise IngestError(f"non-finite coordinates in this frame (atoms {bad[:5].tolist()}): the file is corrupt")
    symbols = np.array(atoms.get_chemical_symbols())
    n = len(atoms)
    foreign = sorted(set(symbols.tolist()) - set(salt.elements))
    if foreign:
        idx = np.flatnonzero(np.isin(symbols, foreign))
        raise IngestError(
            f"atoms {idx[:5].tolist()}… are {', '.join(foreign)}, which is neither water nor an ion of {salt}: "
            f"{salt} in water holds only {', '.join(salt.elements)}; check --salt or the file's element/type mapping"
        )
    mol_id = np.full(n, -1, dtype=np.int32)
    role = np.full(n, -1, dtype=np.int8)
    center = np.zeros(n, dtype=bool)
    # 1. waters: each H to its nearest heavy atom within the O–H cutoff
    i, j, d = neighbor_list("ijd", atoms, WATER_OH_CUTOFF_A)
    sel = (symbols[i] == "H") & (symbols[j] != "H")
    owner: dict[int, tuple[float, int]] = {}
    for h, heavy, dist in zip(i[sel], j[sel], d[sel], strict=True):
        if int(h) not in owner or dist < owner[int(h)][0]:
            owner[int(h)] = (float(dist), int(heavy))
    hydrogens: dict[int, list[tuple[float, int]]] = {}
    for h, (dist, heavy) in owner.items():
        if symbols[heavy] == "O":
            hydrogens.setdefault(heavy, []).append((dist, h))
    n_h = {o: len(hs) for o, hs in hydrogens.items()}
    next_mol = 0
    for o in sorted(hydrogens):
        if len(hydrogens[o]) < 2:
            continue
        hs = [h for _, h in sorted(hydrogens[o])[:2]]
        mol_id[[o, *hs]] = next_mol
        role[o], role[hs] = ROLE_CODES["water_O"], ROLE_CODES["water_H"]
        next_mol += 1
    # 2. ions: bonds only along the template's element pairs
    rest = np.flatnonzero(mol_id < 0)
    counts: Counter[str] = Counter()
    if len(rest):
        allowed = _allowed_bonds(salt, bond_tolerance)
        sub = atoms[rest]
        if allowed:
            si, sj, sd = neighbor_list("ijd", sub, max(allowed.values()))
            sub_symbols = symbols[rest]
            keys = [tuple(sorted(p)) for p in zip(sub_symbols[si], sub_symbols[sj], strict=True)]
            bonded = np.array([sd[k] <= allowed.get(key, -1.0) for k, key in enumerate(keys)], dtype=bool)
        else:
            si = sj = np.zeros(0, dtype=int)
            bonded = np.zeros(0, dtype=bool)
        graph = coo_matrix((np.ones(bonded.sum()), (si[bonded], sj[bonded])), shape=(len(rest), len(rest)))
        n_groups, labels = connected_components(graph, directed=False)
        adjacency: dict[int, list[int]] = {}
        for a, b in zip(rest[si[bonded]], rest[sj[bonded]], strict=True):
            adjacency.setdefault(int(a), []).append(int(b))
        templates = {tuple(sorted(Counter(ion.symbols).items())): ion for ion in (salt.cation, salt.anion)}
        for g in range(n_groups):
            members = rest[labels == g]
            ion = templates.get(tuple(sorted(Counter(symbols[members].tolist()).items())))
            if ion is None:
                raise IngestError(_diagnose(members, symbols, salt, n_h))
            mol_id[members] = next_mol
            role[members] = ROLE_CODES["cation" if ion.is_cation else "anion"]
            candidates = members[symbols[members] == ion.symbols[ion.center_index]]
            signature = _neighbour_signature(ion, ion.center_index)
            matching = [c for c in candidates if tuple(sorted(symbols[adjacency.get(int(c), [])])) == signature]
            center[(matching or candidates.tolist())[0]] = True
            counts[ion.name] += 1
            next_mol += 1
    n_cat, n_an = counts[salt.cation.name], counts[salt.anion.name]
    if n_cat == 0:
        raise IngestError(f"no ions of {salt} found (only water); check --salt or the file")
    if n_cat * salt.nu_anion != n_an * salt.nu_cation:
        raise IngestError(
            f"found {n_cat} {salt.cation.name} and {n_an} {salt.anion.name}: not a neutral {salt} composition"
        )
    return mol_id, role, center


class Composition(NamedTuple):
    """The molecules of a frame: per-atom topology (:func:`assign_molecules`), counts and molality."""

    mol_id: np.ndarray  # (N,) molecule index per atom
    role: np.ndarray  # (N,) ROLE_CODES per atom
    center: np.ndarray  # (N,) bool: the centre atom of each ion
    n_waters: int
    n_cations: int
    n_anions: int
    molality: float  # mol/kg, from the ion and water counts


def identify_composition(first: Atoms, salt: Salt, molality: float | None, path: Path) -> Composition:
    """Waters and ions of a frame (:func:`assign_molecules`), their counts and the molality (mol/kg).

    Parameters
    ----------
    first
        The frame (an external trajectory's first).
    salt
        The stated salt.
    molality
        The stated molality (mol/kg), or None to take the frame's.
    path
        The file, named in error messages.

    Raises
    ------
    IngestError
        Without waters, or when ``molality`` differs from the frame's by more than 2 %.
    """
    mol_id, role, center = assign_molecules(first, salt)
    n_waters = int((role == ROLE_CODES["water_O"]).sum())
    n_cations = int((center & (role == ROLE_CODES["cation"])).sum())
    n_anions = int((center & (role == ROLE_CODES["anion"])).sum())
    if n_waters == 0:
        raise IngestError(f"{path}: no water molecules found (O with two H within 1.25 Å)")
    actual = n_cations / salt.nu_cation / (n_waters * WATER_MOLAR_MASS_KG)
    if molality is not None and abs(actual - molality) > 0.02 * molality:
        raise IngestError(
            f"the file holds {n_cations // salt.nu_cation} formula units of {salt} in {n_waters} waters = "
            f"{actual:.3f} mol/kg, not the stated {molality} mol/kg; fix --molality or omit it"
        )
    return Composition(mol_id, role, center, n_waters, n_cations, n_anions, actual)
