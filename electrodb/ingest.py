"""Import external trajectories (AIMD, literature, other codes) into the ElectroDB trajectory store.

Any ASE-readable format works (extxyz, LAMMPS dump, CP2K xyz, VASP XDATCAR …). Molecules are recognised from
the first frame: each water O takes its two nearest H within 1.25 Å; the remaining atoms are grouped by
covalent bonds and matched to the salt's ion templates by composition. Frames are streamed (never all in
memory), unwrapped on the fly with minimum-image displacements (so wrapped dumps give exact diffusion), and
written in the same chunked format and with the same metadata as ElectroDB's own MD, so the same builders
process them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.io import iread
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from electrodb.campaign import stable_hash
from electrodb.chemistry import WATER_MOLAR_MASS_KG, Salt, parse_salt
from electrodb.stores import ElectroDBStores
from electrodb.systems import ROLE_CODES
from electrodb.trajectory import TrajectoryDocument, TrajectoryWriter, truncate_chunks, utcnow

__all__ = ["IngestError", "assign_molecules", "ingest_trajectory"]


class IngestError(ValueError):
    """The external trajectory cannot be interpreted as the stated electrolyte."""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assign_molecules(atoms: Atoms, salt: Salt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-atom (mol_id, role code, ion_center) for a frame of ``salt`` in water.

    Raises :class:`IngestError` when atoms are left that are neither water nor one of the salt's ions, or
    when the ion counts break the salt's stoichiometry.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    n = len(atoms)
    mol_id = np.full(n, -1, dtype=np.int32)
    role = np.full(n, -1, dtype=np.int8)
    center = np.zeros(n, dtype=bool)
    i, j, d = neighbor_list("ijd", atoms, 1.25)
    oh = (symbols[i] == "O") & (symbols[j] == "H")
    next_mol = 0
    taken_h: set[int] = set()
    for o in np.flatnonzero(symbols == "O"):
        sel = oh & (i == o)
        hs = [h for _, h in sorted(zip(d[sel], j[sel], strict=True)) if h not in taken_h][:2]
        if len(hs) == 2:
            mol_id[[o, *hs]] = next_mol
            role[o], role[hs] = ROLE_CODES["water_O"], ROLE_CODES["water_H"]
            taken_h.update(hs)
            next_mol += 1
    rest = np.flatnonzero(mol_id < 0)
    if len(rest):
        # Bond graph among the non-water atoms: covalent radii sum × 1.2.
        sub = atoms[rest]
        si, sj, sd = neighbor_list("ijd", sub, 2.5)
        radii = covalent_radii[sub.numbers]
        bonded = sd < 1.2 * (radii[si] + radii[sj])
        graph = coo_matrix((np.ones(bonded.sum()), (si[bonded], sj[bonded])), shape=(len(rest), len(rest)))
        n_groups, labels = connected_components(graph, directed=False)
        templates = {}
        for ion in (salt.cation, salt.anion):
            templates[tuple(sorted(Counter(ion.symbols).items()))] = ion
        counts: Counter[str] = Counter()
        for g in range(n_groups):
            members = rest[labels == g]
            key = tuple(sorted(Counter(symbols[members]).items()))
            ion = templates.get(key)
            if ion is None:
                formula = "".join(f"{s}{c if c > 1 else ''}" for s, c in key)
                raise IngestError(
                    f"atoms {members[:5].tolist()}… form {formula}, which is neither water nor an ion of {salt} "
                    f"({salt.cation.name}, {salt.anion.name}); check --salt or the file's element order"
                )
            mol_id[members] = next_mol
            role[members] = ROLE_CODES["cation" if ion.is_cation else "anion"]
            center_symbol = ion.symbols[ion.center_index]
            candidates = members[symbols[members] == center_symbol]
            center[candidates[0]] = True
            counts[ion.name] += 1
            next_mol += 1
        n_cat, n_an = counts[salt.cation.name], counts[salt.anion.name]
        if n_cat * salt.nu_anion != n_an * salt.nu_cation:
            raise IngestError(
                f"found {n_cat} {salt.cation.name} and {n_an} {salt.anion.name}: not a neutral {salt} composition"
            )
    return mol_id, role, center


def _unwrapped_frames(path: Path, fmt: str | None, index: str) -> Iterator[tuple[Atoms, np.ndarray]]:
    """Yield (frame, unwrapped positions), accumulating minimum-image displacements between frames."""
    previous_wrapped: np.ndarray | None = None
    unwrapped: np.ndarray | None = None
    for frame in iread(str(path), index=index, format=fmt):
        if frame.cell.rank < 3:
            raise IngestError(f"{path}: frames have no periodic cell; ElectroDB needs periodic boxes")
        wrapped = frame.get_positions()
        if previous_wrapped is None:
            unwrapped = wrapped.copy()
        else:
            assert unwrapped is not None
            frac = np.linalg.solve(frame.cell.array.T, (wrapped - previous_wrapped).T).T
            frac -= np.round(frac)
            unwrapped = unwrapped + frac @ frame.cell.array
        previous_wrapped = wrapped
        yield frame, unwrapped


def ingest_trajectory(
    path: str | Path,
    salt: str,
    molality: float | None,
    temperature: float,
    timestep_fs: float,
    interval: int,
    stores: ElectroDBStores,
    fmt: str | None = None,
    index: str = ":",
    source_label: str = "external",
    campaign: str | None = None,
    chunk_frames: int = 200,
) -> TrajectoryDocument:
    """Stream an external trajectory into the store; return its metadata document.

    ``molality`` is checked against the composition found in the file (mol/kg from ion and water counts);
    a mismatch above 2 % is an error, ``None`` takes the file's value. Re-ingesting the same file with the
    same metadata replaces the earlier copy (the id is the hash of file content and metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path} does not exist")
    parsed = parse_salt(salt)
    if timestep_fs <= 0 or interval < 1:
        raise IngestError("timestep must be positive (fs) and --interval a positive number of steps")
    tid = stable_hash(
        {
            "file": _file_sha256(path),
            "salt": parsed.formula,
            "temperature": temperature,
            "timestep_fs": timestep_fs,
            "interval": interval,
            "index": index,
            "source": source_label,
        }
    )
    frames = _unwrapped_frames(path, fmt, index)
    try:
        first, first_unwrapped = next(frames)
    except StopIteration:
        raise IngestError(f"{path}: no frames could be read") from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise IngestError(f"{path}: could not read with ASE (format={fmt or 'auto'}): {exc}") from exc
    mol_id, role, center = assign_molecules(first, parsed)
    n_waters = int((role == ROLE_CODES["water_O"]).sum())
    n_cations = int((center & (role == ROLE_CODES["cation"])).sum())
    n_anions = int((center & (role == ROLE_CODES["anion"])).sum())
    if n_waters == 0:
        raise IngestError(f"{path}: no water molecules found (O with two H within 1.25 Å)")
    actual = n_cations / parsed.nu_cation / (n_waters * WATER_MOLAR_MASS_KG)
    if molality is not None and abs(actual - molality) > 0.02 * molality:
        raise IngestError(
            f"the file holds {n_cations // parsed.nu_cation} formula units of {parsed} in {n_waters} waters = "
            f"{actual:.3f} mol/kg, not the stated {molality} mol/kg; fix --molality or omit it"
        )
    frame_ps = timestep_fs * interval / 1000.0
    doc = TrajectoryDocument(
        trajectory_id=tid,
        system_id=tid,
        campaign_ids=[campaign] if campaign else [],
        source="ingest",
        salt=parsed.formula,
        cation=parsed.cation.name,
        anion=parsed.anion.name,
        molality=actual,
        temperature=temperature,
        n_atoms=len(first),
        n_waters=n_waters,
        n_cations=n_cations,
        n_anions=n_anions,
        symbols=first.get_chemical_symbols(),
        masses=first.get_masses().tolist(),
        role=role.tolist(),
        mol_id=mol_id.tolist(),
        ion_center=center.tolist(),
        model_id=f"external:{source_label}",
        model={"kind": "external", "name": source_label, "source_file": str(path.resolve())},
        md={"timestep_fs": timestep_fs, "sample_every_steps": interval, "source_format": fmt or "auto"},
        timestep_fs=timestep_fs,
        sample_interval_steps=interval,
        frame_interval_ps=frame_ps,
        box_length_A=float(first.cell.lengths()[0]),
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    truncate_chunks(stores.data, tid, 0)
    writer = TrajectoryWriter(stores.data, tid, len(first), chunk_frames)
    symbols = first.get_chemical_symbols()
    writer.append(first_unwrapped, first.cell.array, 0.0, _energy(first), _temperature(first))
    for frame, unwrapped in frames:
        if frame.get_chemical_symbols() != symbols:
            raise IngestError(f"{path}: frame {writer.next_frame} has different atoms than frame 0")
        writer.append(unwrapped, frame.cell.array, writer.next_frame * frame_ps, _energy(frame), _temperature(frame))
    writer.flush()
    doc = doc.model_copy(
        update={
            "status": "completed",
            "n_frames": writer.n_frames,
            "n_chunks": writer.n_chunks,
            "duration_ps": (writer.n_frames - 1) * frame_ps,
            "last_good_frame": writer.n_frames - 1,
            "last_updated": utcnow(),
        }
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    return doc


def _energy(frame: Atoms) -> float:
    try:
        return float(frame.get_potential_energy())
    except Exception:
        return float("nan")


def _temperature(frame: Atoms) -> float:
    return float(frame.get_temperature()) if frame.has("momenta") else float("nan")
