"""Trajectories out of ElectroDB: frames as ASE Atoms or an MDAnalysis Universe, and H5MD / extxyz files.

Other tools (MDAnalysis, solvation_analysis, kinisi) can then recompute any stored number from the same
frames. Used by ``electrodb export --trajectories``, the API's ``/trajectories/{id}/frames`` route and
:meth:`electrodb.api.client.ElectroDBClient.get_trajectory`; re-exported by :mod:`electrodb.io.export`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from electrodb import __version__
from electrodb.store.frames import TrajectoryArrays, TrajectoryError, decode_array, load_trajectory
from electrodb.store.query import SPECS, build_criteria
from electrodb.systems.boxes import ROLE_NAMES
from electrodb.utils.safe_files import OutputPathError, atomic_output

# MDAnalysis (and h5py, its optional H5MD backend) are imported inside the functions that need them: both are
# heavy, optional (the ``dev`` extra) and needed only for Universe and H5MD output.

__all__ = [
    "TRAJECTORY_FORMATS",
    "arrays_universe",
    "ase_frames",
    "export_trajectories",
    "load_frames",
    "topology_names",
    "trajectory_universe",
    "write_h5md",
]


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("._") or "trajectory"


def _frames(arrays: Any) -> Iterator[Any]:
    meta = arrays.metadata
    info = {k: meta[k] for k in ("trajectory_id", "salt", "molality", "model_id") if meta.get(k) is not None}
    for i in range(arrays.n_frames):
        atoms = Atoms(arrays.symbols, positions=arrays.positions[i], cell=arrays.cells[i], pbc=True)
        atoms.set_masses(arrays.masses)
        atoms.new_array("role", arrays.role.astype(np.int64))
        atoms.new_array("mol_id", arrays.mol_id.astype(np.int64))
        atoms.info.update(info)
        atoms.info["time_ps"] = float(arrays.times_ps[i])
        temperature = float(arrays.temperature_K[i])
        if math.isfinite(temperature):
            atoms.info["temperature_K"] = temperature
        energy = float(arrays.potential_energy_eV[i])
        if math.isfinite(energy):
            atoms.calc = SinglePointCalculator(atoms, energy=energy)
        yield atoms


TRAJECTORY_FORMATS = ("extxyz", "h5md")
#: Particle group name of the H5MD files (the one MDAnalysis's ``H5MDWriter`` writes and its reader finds).
H5MD_GROUP = "trajectory"
_FRAME_KEYS = ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K")
_FRAME_KEY_DTYPES = {"positions": np.float32, "cells": np.float32}


def load_frames(meta: dict[str, Any], blobs: Any, start: int = 0, stop: int | None = None) -> TrajectoryArrays:
    """Frames ``start``…``stop - 1`` of a stored trajectory as :class:`~electrodb.store.frames.TrajectoryArrays`.

    Only the chunks overlapping the window are fetched and decoded (``meta`` is the ``trajectories``
    document, with its per-atom lists). Stress is not loaded. Raises
    :class:`~electrodb.store.frames.TrajectoryError` when the stored chunks do not tile the window.
    """
    tid, n_total, n_atoms = meta["trajectory_id"], int(meta.get("n_frames") or 0), int(meta["n_atoms"])
    stop = n_total if stop is None else min(int(stop), n_total)
    start = min(max(int(start), 0), stop)
    n = stop - start
    out = {
        k: np.full(
            (n, n_atoms, 3) if k == "positions" else (n, 3, 3) if k == "cells" else (n,),
            np.nan,
            dtype=_FRAME_KEY_DTYPES.get(k, np.float64),
        )
        for k in _FRAME_KEYS
    }
    filled = start
    if n:
        heads = blobs.query(
            {"trajectory_id": tid, "kind": "trajectory_chunk"},
            properties=["blob_uuid", "frame_start", "n_frames"],
            sort={"frame_start": 1},
        )
        for head in heads:
            c0, cn = int(head["frame_start"]), int(head["n_frames"])
            if c0 + cn <= start or c0 >= stop:
                continue
            if c0 > filled:
                break
            chunk = blobs.query_one({"blob_uuid": head["blob_uuid"]})
            if chunk is None:
                raise TrajectoryError(f"chunk {head['blob_uuid']} vanished while loading")
            lo, hi = max(start, c0), min(stop, c0 + cn)
            for key in _FRAME_KEYS:
                out[key][lo - start : hi - start] = decode_array(chunk[key])[lo - c0 : hi - c0]
            filled = max(filled, hi)
    if filled != stop:
        raise TrajectoryError(f"trajectory {tid}: frames {filled}-{stop - 1} are not stored")
    per_atom = ("symbols", "masses", "role", "mol_id", "ion_center")
    return TrajectoryArrays(
        trajectory_id=tid,
        positions=out["positions"],
        cells=out["cells"],
        times_ps=out["times_ps"],
        potential_energy_eV=out["potential_energy_eV"],
        temperature_K=out["temperature_K"],
        symbols=list(meta["symbols"]),
        masses=np.asarray(meta["masses"], dtype=np.float64),
        role=np.asarray(meta["role"], dtype=np.int8),
        mol_id=np.asarray(meta["mol_id"], dtype=np.int64),
        ion_center=np.asarray(meta["ion_center"], dtype=bool),
        metadata={k: v for k, v in meta.items() if k not in per_atom and k != "_id"},
    )


def _ion_resname(name: str | None, fallback: str) -> str:
    """``Li+`` → ``LI``, ``SO4 2-`` → ``SO4``, ``TFSI-`` → ``TFSI`` (at most 4 characters, as PDB allows)."""
    text = re.sub(r"\s*\d*[+\-]+$", "", str(name or "")).strip()
    text = re.sub(r"[^A-Za-z0-9]", "", text).upper()
    return (text or fallback)[:4]


def topology_names(arrays: Any) -> dict[str, np.ndarray]:
    """Per-atom names of the ElectroDB roles, as MDAnalysis / GROMACS users expect them.

    Returns ``names`` (water ``OW``, ``HW1``, ``HW2``; a monatomic ion its element, ``LI``; a polyatomic ion
    element + running number per element, ``N1``, ``O1``, ``O2``), ``elements`` (``Li``), ``resnames``
    (water ``SOL``, ions by name without charge: ``LI``, ``CL``, ``SO4``), ``segids`` (``WAT``, ``CAT``,
    ``ANI``) per atom, and ``resindex`` (0…n_residues − 1, in order of ElectroDB's ``mol_id``) with
    ``resids = mol_id + 1``.
    """
    meta = arrays.metadata
    role = np.asarray(arrays.role, dtype=np.int64)
    mol_id = np.asarray(arrays.mol_id, dtype=np.int64)
    symbols = list(arrays.symbols)
    cation, anion = _ion_resname(meta.get("cation"), "CAT"), _ion_resname(meta.get("anion"), "ANI")
    resname_of = {"water_O": "SOL", "water_H": "SOL", "cation": cation, "anion": anion}
    segid_of = {"water_O": "WAT", "water_H": "WAT", "cation": "CAT", "anion": "ANI"}
    roles = [ROLE_NAMES[r] for r in role]
    uniq, resindex = np.unique(mol_id, return_inverse=True)
    size = np.bincount(resindex)
    names: list[str] = []
    seen: dict[tuple[int, str], int] = {}
    for i, (r, el) in enumerate(zip(roles, symbols, strict=True)):
        key = (int(resindex[i]), el)
        seen[key] = seen.get(key, 0) + 1
        if r == "water_O":
            names.append("OW")
        elif r == "water_H":
            names.append(f"HW{seen[key]}")
        elif size[resindex[i]] == 1:
            names.append(el.upper())
        else:
            names.append(f"{el.upper()}{seen[key]}"[:4])
    return {
        "names": np.array(names, dtype=object),
        "elements": np.array(symbols, dtype=object),
        "resnames": np.array([resname_of[r] for r in roles], dtype=object),
        "segids": np.array([segid_of[r] for r in roles], dtype=object),
        "resindex": resindex.astype(np.int64),
        "resids": (uniq + 1).astype(np.int64),
    }


def _standard_orientation(arrays: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions and cells rotated so that every cell is lower-triangular (MDAnalysis's box convention).

    Orthorhombic and already lower-triangular cells are returned unchanged (no rounding); otherwise each
    frame is rotated rigidly (``x' = x R`` with ``R = cell⁻¹ cell'``), which changes no distance.
    """
    from MDAnalysis.lib.mdamath import triclinic_box, triclinic_vectors

    pos, cells = arrays.positions, np.asarray(arrays.cells, dtype=np.float64)
    upper = cells[:, np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]]
    if not np.any(np.abs(upper) > 1e-6 * np.abs(cells).max(initial=1.0)):
        return pos, cells
    pos = np.array(pos, dtype=np.float32)
    new_cells = np.empty_like(cells)
    for f, cell in enumerate(cells):
        std = triclinic_vectors(triclinic_box(*cell)).astype(np.float64)
        pos[f] = (pos[f].astype(np.float64) @ np.linalg.solve(cell, std)).astype(np.float32)
        new_cells[f] = std
    return pos, new_cells


def arrays_universe(arrays: Any) -> Any:
    """An in-memory MDAnalysis ``Universe`` of a loaded trajectory (``TrajectoryArrays``).

    Topology from :func:`topology_names`: names, types = elements, masses, resnames, resids = ``mol_id + 1``
    (one residue per ElectroDB molecule), segments ``WAT``/``CAT``/``ANI`` (the roles), ids = atom index + 1.
    Coordinates: the stored unwrapped positions in Å (rotated rigidly only for a cell that is not
    lower-triangular), the box of every frame, ``ts.time`` = the stored time in ps.
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.lib.mdamath import triclinic_box

    top = topology_names(arrays)
    n_atoms, n_res = len(arrays.symbols), len(top["resids"])
    seg_names = ("WAT", "CAT", "ANI")
    res_first = np.zeros(n_res, dtype=np.int64)
    res_first[top["resindex"][::-1]] = np.arange(n_atoms)[::-1]  # first atom of each residue
    res_seg = np.array([seg_names.index(top["segids"][i]) for i in res_first], dtype=np.int64)
    u = mda.Universe.empty(
        n_atoms,
        n_residues=n_res,
        n_segments=len(seg_names),
        atom_resindex=top["resindex"],
        residue_segindex=res_seg,
        trajectory=False,
    )
    u.add_TopologyAttr("names", top["names"])
    u.add_TopologyAttr("types", top["elements"])
    u.add_TopologyAttr("elements", top["elements"])
    u.add_TopologyAttr("masses", np.asarray(arrays.masses, dtype=np.float64))
    u.add_TopologyAttr("resnames", top["resnames"][res_first])
    u.add_TopologyAttr("resids", top["resids"])
    u.add_TopologyAttr("segids", np.array(seg_names, dtype=object))
    u.add_TopologyAttr("ids", np.arange(1, n_atoms + 1))
    pos, cells = _standard_orientation(arrays)
    dims = np.array([triclinic_box(*c) for c in cells], dtype=np.float32).reshape(-1, 6)
    times = np.asarray(arrays.times_ps, dtype=np.float64)
    dt = float(np.mean(np.diff(times))) if len(times) > 1 else float(arrays.metadata.get("frame_interval_ps") or 1.0)
    if len(times) > 1 and np.max(np.abs(times - (times[0] + dt * np.arange(len(times))))) > 1e-6:
        warnings.warn(
            f"trajectory {arrays.trajectory_id}: frames are not evenly spaced in time; the Universe's ts.time is "
            f"first time + frame × {dt:g} ps (the stored times are in the H5MD file and the ASE frames)",
            stacklevel=2,
        )
    # a copy: MemoryReader transformations rewrite the coordinate array in place
    coords = np.array(pos, dtype=np.float32, order="C", copy=True)
    u.load_new(coords, format=MemoryReader, dimensions=dims, dt=dt)
    u.trajectory.ts.data["time_offset"] = float(times[0]) if len(times) else 0.0
    u.trajectory[0]
    return u


def ase_frames(arrays: Any) -> list[Any]:
    """The frames of a loaded trajectory as ASE ``Atoms``: ``arrays["role"]``, ``arrays["mol_id"]``,
    ``info["time_ps"]`` (and ``temperature_K``, potential energy as the calculator's energy, when recorded)."""
    return list(_frames(arrays))


def _h5md_observable(h5: Any, name: str, values: np.ndarray, unit: str) -> None:
    if not np.all(np.isfinite(values)):
        return
    group = h5.require_group("observables").require_group(name)
    dset = group.create_dataset("value", data=np.asarray(values, dtype=np.float64))
    if unit:
        dset.attrs["unit"] = unit
    group["step"] = h5[f"particles/{H5MD_GROUP}/position/step"]  # hard links: one step/time for all
    group["time"] = h5[f"particles/{H5MD_GROUP}/position/time"]


def _frame_dt(arrays: Any) -> float:
    """The time between frames (ps): the stored frame interval, else the mean spacing of the times, else 1."""
    dt = arrays.metadata.get("frame_interval_ps")
    if dt:
        return float(dt)
    times = np.asarray(arrays.times_ps, dtype=np.float64)
    return float(np.mean(np.diff(times))) if len(times) > 1 else 1.0


def _h5md_time(h5: Any, times: np.ndarray, steps: np.ndarray) -> None:
    """Replace the writer's float32 ``time`` (and its ``step``) by the stored times in float64 and the MD steps.

    MDAnalysis's ``H5MDWriter`` writes times in float32, whose rounding (1e-7 relative) makes frames 0.002 ps apart
    look unevenly spaced to ``EinsteinMSD``; one float64 dataset is hard-linked into every group that had one.
    """
    traj = h5[f"particles/{H5MD_GROUP}"]
    holders = [name for name in ("box/edges", "position") if name in traj and "time" in traj[name]]
    for name in holders:
        del traj[name]["time"], traj[name]["step"]
    time = traj[holders[0]].create_dataset("time", data=np.asarray(times, dtype=np.float64))
    time.attrs["unit"] = "ps"
    step = traj[holders[0]].create_dataset("step", data=np.asarray(steps, dtype=np.int64))
    for name in holders[1:]:
        traj[name]["time"], traj[name]["step"] = time, step


def write_h5md(arrays: Any, path: str | Path, topology: str | Path | None = None) -> Path:
    """Write a loaded trajectory as an H5MD 1.1 file with MDAnalysis's ``H5MDWriter``, atomically.

    Layout (``F`` frames, ``N`` atoms)::

        h5md/                          version [1, 1], author, creator = ElectroDB <version>
        particles/trajectory/box/      dimension = 3, boundary = periodic ×3
            edges/value (F, 3, 3) Å    lattice vectors as rows (lower-triangular, MDAnalysis's convention)
            edges/step, edges/time     shared with position/ (time in ps)
        particles/trajectory/position/value (F, N, 3) float32 Å, unwrapped as stored; step (F,) int64 MD step
            (time / timestep), time (F,) float64 ps, the stored times exactly
        observables/dt/value (F,) float64 ps: the frame interval (MDAnalysis reads it as ``ts.dt``; without it
                                       the reader falls back to 1 ps)
        observables/potential_energy/value (F,) eV, observables/temperature/value (F,) K  (when recorded)
        parameters/electrodb/          attributes trajectory_id, salt, cation, anion, molality, temperature,
                                       model_id; per-atom datasets names, resnames, resids, segids, elements,
                                       role, mol_id, ion_center, masses

    ``topology``: also write the first frame as a PDB there (names, resnames, resids, segids, elements), so
    that ``MDAnalysis.Universe(topology, path)`` has the ElectroDB roles as residue and segment names.
    """
    import h5py
    import MDAnalysis as mda
    from MDAnalysis.coordinates.H5MD import H5MDWriter

    u = arrays_universe(arrays)
    n_atoms, n_frames = u.atoms.n_atoms, u.trajectory.n_frames
    with atomic_output(path) as part:
        with H5MDWriter(
            str(part),
            n_atoms,
            n_frames=n_frames,
            timeunit="ps",
            lengthunit="Angstrom",
            velocities=False,
            forces=False,
            compression="gzip",
            compression_opts=1,
            author="ElectroDB",
            creator="ElectroDB",
            creator_version=__version__,
        ) as writer:
            for _ in u.trajectory:
                writer.write(u.atoms)
        top = topology_names(arrays)
        meta = arrays.metadata
        times = np.asarray(arrays.times_ps, dtype=np.float64)
        timestep_ps = float(meta.get("timestep_fs") or 0.0) / 1000.0
        steps = np.rint(times / timestep_ps).astype(np.int64) if timestep_ps > 0 else np.arange(len(times))
        if len(steps) > 1 and np.any(np.diff(steps) <= 0):
            steps = np.arange(len(times))
        with h5py.File(part, "a") as h5:
            _h5md_time(h5, times, steps)
            _h5md_observable(h5, "dt", np.full(len(times), _frame_dt(arrays)), "ps")
            _h5md_observable(h5, "potential_energy", arrays.potential_energy_eV, "eV")
            _h5md_observable(h5, "temperature", arrays.temperature_K, "K")
            group = h5.require_group("parameters").require_group("electrodb")
            for key in ("trajectory_id", "salt", "cation", "anion", "molality", "temperature", "model_id"):
                if meta.get(key) is not None:
                    group.attrs[key] = meta[key]
            group.attrs["trajectory_id"] = arrays.trajectory_id
            text = h5py.string_dtype()
            for key in ("names", "resnames", "segids", "elements"):
                group.create_dataset(key, data=[str(x) for x in top[key]], dtype=text)
            group.create_dataset("resids", data=top["resids"][top["resindex"]])
            group.create_dataset("role", data=np.asarray(arrays.role, dtype=np.int8))
            group["role"].attrs["codes"] = "0 water_O, 1 water_H, 2 cation, 3 anion"
            group.create_dataset("mol_id", data=np.asarray(arrays.mol_id, dtype=np.int64))
            group.create_dataset("ion_center", data=np.asarray(arrays.ion_center, dtype=bool))
            group.create_dataset("masses", data=np.asarray(arrays.masses, dtype=np.float64))
    if topology is not None:
        u.trajectory[0]
        with atomic_output(topology) as part, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PDB fields ElectroDB has no data for (altLocs, occupancies, ...)
            with mda.Writer(str(part), n_atoms=n_atoms, format="PDB") as pdb:
                pdb.write(u.atoms)
    return Path(path)


def trajectory_universe(stores: Any, trajectory_id: str) -> Any:
    """A stored trajectory as an in-memory MDAnalysis ``Universe`` (for users on the database machine).

    Names as :func:`topology_names`: ``u.select_atoms("resname SOL and name OW")`` are the water O,
    ``"segid CAT"`` the cations, ``"segid ANI"`` the anions; residues are ElectroDB molecules (resid =
    ``mol_id + 1``). Positions unwrapped, Å; ``ts.time`` in ps.
    """
    trajectories, blobs = stores["trajectories"], stores["data"]
    trajectories.connect()
    blobs.connect()
    return arrays_universe(load_trajectory(trajectory_id, trajectories, blobs, fields=_FRAME_KEYS))


def _output_folder(out_dir: str | Path) -> Path:
    """The folder trajectory files go into, created if missing; :class:`OutputPathError` if it cannot be one."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(
            f"--out {out_dir} exists and is not a folder; --trajectories writes one file per trajectory into a "
            f"folder: give a new or existing folder (e.g. --out {out_dir.name or 'trajectories'}-files/)"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"cannot create the folder {out_dir} ({exc.strerror}); give a folder you can write to as --out"
        ) from None
    return out_dir


def export_trajectories(
    stores: Any, out_dir: str | Path, filters: dict[str, Any] | None = None, fmt: str = "extxyz"
) -> list[Path]:
    """Write every matching trajectory as ``<out_dir>/<trajectory_id>.extxyz`` or ``.h5md``; return the paths.

    Frames are loaded one trajectory at a time with :func:`electrodb.store.frames.load_trajectory`; unwrapped
    positions in Å, per-frame cell, times in ps. ``extxyz``: ``time_ps``/``temperature_K`` in the comment line,
    potential energy as ``energy`` when recorded, per-atom ``role`` and ``mol_id`` columns. ``h5md``: the
    layout of :func:`write_h5md` plus ``<trajectory_id>.pdb`` beside it (topology for
    ``MDAnalysis.Universe(pdb, h5md)``). Files are written atomically. ``filters`` takes the API's
    ``GET /trajectories`` names (``salt``, ``status``, ``trajectory_id``, ``molality_min``, …). Trajectories
    without frames or whose stored chunks are inconsistent are skipped with a warning. An ``out_dir`` that
    exists but is not a folder (a file, ``/dev/null``) or cannot be created raises
    :class:`~electrodb.utils.safe_files.OutputPathError` (a ``ValueError``) before anything is read.
    """
    fmt = fmt.lower()
    if fmt not in TRAJECTORY_FORMATS:
        raise ValueError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(TRAJECTORY_FORMATS)}")
    criteria = build_criteria(SPECS["trajectories"], filters or {})
    trajectories, blobs = stores["trajectories"], stores["data"]
    trajectories.connect()
    blobs.connect()
    out_dir = _output_folder(out_dir)
    heads = list(
        trajectories.query(criteria, properties={"trajectory_id": 1, "n_frames": 1}, sort={"trajectory_id": 1})
    )
    written: list[Path] = []
    for head in heads:
        tid = head["trajectory_id"]
        if not head.get("n_frames"):
            warnings.warn(f"trajectory {tid} has no stored frames; skipped", stacklevel=2)
            continue
        try:
            arrays = load_trajectory(tid, trajectories, blobs, fields=_FRAME_KEYS)
        except TrajectoryError as exc:
            warnings.warn(f"trajectory {tid} skipped: {exc}", stacklevel=2)
            continue
        path = out_dir / f"{_safe_filename(tid)}.{fmt}"
        if fmt == "h5md":
            write_h5md(arrays, path, topology=path.with_suffix(".pdb"))
        else:
            with atomic_output(path) as part:
                write(part, _frames(arrays), format="extxyz")
        written.append(path)
    return written
