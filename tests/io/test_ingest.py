"""Ingest: ion recognition by the ions' own templates, validation of everything stored, and staged writes.

Frames are built from the catalogue's templates (:mod:`electrodb.systems.chemistry`) packed at random into a cubic box,
with chosen ions moved into contact (contact ion pairs, cation dimers, water-in-salt Li–O(TFSI) contacts).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.data import covalent_radii
from ase.io import write
from scipy.spatial.transform import Rotation

from electrodb.io.ingest import IngestError, assign_molecules, ingest_trajectory
from electrodb.store.frames import load_trajectory
from electrodb.systems.boxes import ROLE_CODES
from electrodb.systems.chemistry import ION_CATALOGUE, get_ion, parse_salt, water_template

# ------------------------------------------------------------------------------------------------ builders


def _oriented(template: Atoms, rng: np.random.Generator) -> Atoms:
    mol = template.copy()
    mol.positions = Rotation.random(random_state=rng).apply(mol.positions - mol.positions.mean(axis=0))
    return mol


def _min_image_distance(a: np.ndarray, b: np.ndarray, length: float) -> float:
    d = a[:, None, :] - b[None, :, :]
    d -= length * np.round(d / length)
    return float(np.sqrt((d**2).sum(-1)).min())


def build_box(
    salt: str,
    n_waters: int,
    length: float,
    clusters: list[Atoms] = (),  # type: ignore[assignment]
    free_formula_units: int = 0,
    seed: int = 0,
    min_distance: float = 2.1,
) -> Atoms:
    """Random, non-overlapping placement of rigid ``clusters`` (contact pairs built by hand), free ions, waters."""
    s = parse_salt(salt)
    rng = np.random.default_rng(seed)
    pieces = list(clusters)
    for _ in range(free_formula_units):
        pieces += [s.cation.atoms()] * s.nu_cation + [s.anion.atoms()] * s.nu_anion
    pieces += [water_template()] * n_waters
    box = Atoms(cell=[length] * 3, pbc=True)
    for piece in pieces:
        for _ in range(20000):
            mol = _oriented(piece, rng)
            mol.positions += rng.uniform(0, length, 3)
            if len(box) == 0 or _min_image_distance(mol.positions, box.positions, length) > min_distance:
                box += mol
                break
        else:
            raise RuntimeError("could not place a molecule; use a larger box")
    box.wrap()
    return box


def contact(anion: Atoms, atom: int, cation: str, distance: float, center: int = 0) -> Atoms:
    """``cation`` placed ``distance`` Å from anion atom ``atom``, on the far side from the anion's centre."""
    direction = anion.positions[atom] - anion.positions[center]
    if np.linalg.norm(direction) < 1e-9:  # monatomic anion
        direction = np.array([1.0, 0.0, 0.0])
    direction /= np.linalg.norm(direction)
    return anion + Atoms(cation, positions=[anion.positions[atom] + distance * direction])


def frames_of(atoms: Atoms, n_frames: int, seed: int = 1, step_A: float = 0.05) -> list[Atoms]:
    """Rigid small random moves of all atoms (frame 0 = ``atoms``), wrapped as MD codes write them."""
    rng = np.random.default_rng(seed)
    out = []
    pos = atoms.positions.copy()
    for k in range(n_frames):
        if k:
            pos = pos + rng.normal(0, step_A, pos.shape)
        frame = atoms.copy()
        frame.positions = pos
        frame.wrap()
        out.append(frame)
    return out


def nacl_frames(n_frames: int = 12, seed: int = 3) -> list[Atoms]:
    return frames_of(build_box("NaCl", 30, 11.0, free_formula_units=1, seed=seed), n_frames)


def write_frames(path: Path, frames: list[Atoms]) -> Path:
    write(path, frames, format="extxyz")
    return path


def ions(atoms: Atoms, salt: str) -> tuple[int, int, int]:
    mol, role, center = assign_molecules(atoms, parse_salt(salt))
    assert (mol >= 0).all()
    n_w = int((role == ROLE_CODES["water_O"]).sum())
    return int((center & (role == 2)).sum()), int((center & (role == 3)).sum()), n_w


# -------------------------------------------------------------------------------------------- templates


def test_template_bonds_are_the_ions_own_bonds():
    assert set(get_ion("TFSI").bonded_pairs()) == {("C", "F"), ("C", "S"), ("N", "S"), ("O", "S")}
    assert set(get_ion("SO4").bonded_pairs()) == {("O", "S")}
    assert set(get_ion("NO3").bonded_pairs()) == {("N", "O")}
    assert get_ion("Li").bonded_pairs() == {} and get_ion("Cl").bonds() == []
    for ion in ION_CATALOGUE.values():  # every template is one connected tree of bonds
        assert len(ion.bonds()) == ion.n_atoms - 1, ion.name
    assert abs(get_ion("SO4").bonded_pairs()[("O", "S")] - 1.49) < 1e-9


# ------------------------------------------------------------------------------------- ion recognition


def test_licl_contact_pairs_and_li_dimer_are_separate_ions():
    # Cl–Li 2.35 Å, Li–Li 2.68 Å, Li–Cl 2.35 Å: a (LiCl)2 aggregate; the old covalent-radius rule fused it
    cluster = Atoms("ClLiLiCl", positions=[[0, 0, 0], [2.35, 0, 0], [2.35, 2.68, 0], [4.70, 2.68, 0]])
    assert 2.35 < 1.2 * (covalent_radii[3] + covalent_radii[17])  # what the old rule called a bond
    atoms = build_box("LiCl", 40, 12.0, clusters=[cluster, contact(Atoms("Cl"), 0, "Li", 2.35)], seed=1)
    assert ions(atoms, "LiCl") == (3, 3, 40)
    mol, _, _ = assign_molecules(atoms, parse_salt("LiCl"))
    li = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "Li")
    assert len(set(mol[li].tolist())) == 3  # each Li its own ion


def test_litfsi_water_in_salt_with_li_o_contacts():
    tfsi = get_ion("TFSI").atoms()
    o = [k for k, s in enumerate(tfsi.get_chemical_symbols()) if s == "O"]
    s_of = [k for k, s in enumerate(tfsi.get_chemical_symbols()) if s == "S"]
    # Li bound to a sulfonyl O at 1.95 Å (bond direction away from its S), a second Li to the other SO2
    pair = contact(tfsi, o[0], "Li", 1.95, center=s_of[0])
    pair = contact(pair, o[2], "Li", 1.95, center=s_of[1])
    # ~18.5 mol/kg: 2 LiTFSI per 6 waters; one Li is hydrated by waters at 2.0 Å
    atoms = build_box("LiTFSI", 6, 14.0, clusters=[pair, get_ion("TFSI").atoms()], seed=2, min_distance=1.9)
    assert ions(atoms, "LiTFSI") == (2, 2, 6)
    mol, role, center = assign_molecules(atoms, parse_salt("LiTFSI"))
    symbols = np.array(atoms.get_chemical_symbols())
    assert set(symbols[center & (role == 3)].tolist()) == {"N"}
    anion_mols = np.unique(mol[role == 3])
    assert all((mol == m).sum() == 15 for m in anion_mols)
    hot = atoms.copy()  # thermal distortion: every atom displaced by N(0, 0.07 Å) per axis
    hot.positions += np.random.default_rng(0).normal(0.0, 0.07, hot.positions.shape)
    assert ions(hot, "LiTFSI") == (2, 2, 6)


def test_li2so4_contacts_keep_sulfate_oxygens_and_waters_apart():
    so4 = get_ion("SO4").atoms()
    pair = contact(contact(so4, 1, "Li", 1.95), 2, "Li", 1.95)  # two Li on two sulfate O
    # a water donating an H-bond to a third sulfate O: H···O 1.70 Å (beyond 1.25 Å, so not the O's H)
    o3 = so4.positions[3] / np.linalg.norm(so4.positions[3])
    water = water_template()
    water.positions -= water.positions[1]  # H1 at the origin
    oh = water.positions[0] - water.positions[1]
    rot, _ = Rotation.align_vectors([o3], [oh / np.linalg.norm(oh)])
    water.positions = rot.apply(water.positions) + so4.positions[3] + 1.70 * o3
    cluster = pair + water
    atoms = build_box("Li2SO4", 30, 12.0, clusters=[cluster], seed=3)
    assert ions(atoms, "Li2SO4") == (2, 1, 31)
    mol, role, _ = assign_molecules(atoms, parse_salt("Li2SO4"))
    assert (role[: len(so4)] == ROLE_CODES["anion"]).all() and len(set(mol[: len(so4)].tolist())) == 1
    n = len(pair)
    assert (role[n : n + 3] == [ROLE_CODES["water_O"], ROLE_CODES["water_H"], ROLE_CODES["water_H"]]).all()


def test_nano3_contact_pairs():
    no3 = get_ion("NO3").atoms()
    atoms = build_box("NaNO3", 30, 12.0, clusters=[contact(no3, 1, "Na", 2.40), contact(no3, 2, "Na", 2.40)], seed=4)
    assert ions(atoms, "NaNO3") == (2, 2, 30)


def test_acetate_centre_is_the_carboxyl_carbon():
    atoms = build_box("Na/OAc", 20, 11.0, free_formula_units=1, seed=5)
    _, role, center = assign_molecules(atoms, parse_salt("Na/OAc"))
    c = int(np.flatnonzero(center & (role == 3))[0])
    d = atoms.get_distances(c, np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O"), mic=True)
    assert np.sort(d)[:2].max() < 1.35  # bonded to both O


def test_bad_files_get_clear_errors():
    nacl = build_box("NaCl", 20, 11.0, free_formula_units=1, seed=6)
    with pytest.raises(IngestError, match=r"Na, which is neither water nor an ion of LiCl"):
        assign_molecules(nacl, parse_salt("LiCl"))
    tfsi = get_ion("TFSI").atoms()
    del tfsi[next(k for k, s in enumerate(tfsi.get_chemical_symbols()) if s == "F")]
    broken = build_box("LiTFSI", 10, 14.0, clusters=[tfsi, Atoms("Li")], seed=7)
    with pytest.raises(IngestError, match=r"form C2F5NO4S2.*incomplete TFSI- \(missing F"):
        assign_molecules(broken, parse_salt("LiTFSI"))
    xe = nacl.copy()
    xe.symbols[0] = "Xe"
    with pytest.raises(IngestError, match=r"Xe, which is neither water nor an ion of NaCl"):
        assign_molecules(xe, parse_salt("NaCl"))
    no_h = nacl.copy()
    del no_h[next(k for k, s in enumerate(no_h.get_chemical_symbols()) if s == "H")]
    with pytest.raises(IngestError, match="single H within 1.25"):
        assign_molecules(no_h, parse_salt("NaCl"))
    extra_cl = nacl + Atoms("Cl", positions=[[5.5, 5.5, 5.5]], cell=nacl.cell)
    with pytest.raises(IngestError, match="not a neutral NaCl"):
        assign_molecules(extra_cl, parse_salt("NaCl"))


def test_ingest_of_contact_pair_trajectory(stores, tmp_path):
    cluster = Atoms("ClLiLi", positions=[[0, 0, 0], [2.35, 0, 0], [2.35, 2.68, 0]])
    atoms = build_box("LiCl", 40, 12.0, clusters=[cluster, Atoms("Cl")], seed=8)
    path = write_frames(tmp_path / "licl.extxyz", frames_of(atoms, 10))
    doc = ingest_trajectory(path, "LiCl", None, 298.15, 0.5, 10, stores)
    assert doc.status == "completed" and doc.n_frames == 10 and doc.n_cations == 2 and doc.n_anions == 2
    assert doc.truncated is False and doc.validation_overrides == {} and doc.ingest_action == "created"


# -------------------------------------------------------------------------------------------- validation


def _nothing_stored(stores) -> bool:
    return stores.trajectories.count() == 0 and stores.data.count() == 0


@pytest.mark.parametrize(
    ("temperature", "timestep", "match"),
    [
        (-5.0, 0.5, r"temperature -5.0 K is not a physical temperature"),
        (float("nan"), 0.5, r"temperature nan K is not a physical"),
        (298.15, float("nan"), r"timestep nan fs is not a physical"),
        (298.15, float("inf"), r"timestep inf fs is not a physical"),
        (298.15, 1e6, r"timestep 1000000.0 fs is above 20 fs.*allow_unusual_timestep=True"),
        (6000.0, 0.5, r"temperature 6000.0 K is above 5000 K.*allow_unusual_temperature=True"),
    ],
)
def test_impossible_settings_are_refused(stores, tmp_path, temperature, timestep, match):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(3))
    with pytest.raises(IngestError, match=match):
        ingest_trajectory(path, "NaCl", None, temperature, timestep, 10, stores)
    assert _nothing_stored(stores)


def test_overrides_are_recorded(stores, tmp_path):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(3))
    doc = ingest_trajectory(path, "NaCl", None, 6000.0, 0.5, 10, stores, allow_unusual_temperature=True)
    assert doc.status == "completed" and "6000" in doc.validation_overrides["allow_unusual_temperature"]
    stored = stores.trajectories.query_one({"trajectory_id": doc.trajectory_id})
    assert stored["validation_overrides"] == doc.validation_overrides and "ingest_messages" not in stored
    doc = ingest_trajectory(path, "NaCl", None, 298.15, 40.0, 10, stores, allow_unusual=True, replace=True)
    assert list(doc.validation_overrides) == ["allow_unusual_timestep"]
    assert any("replaced stored trajectory" in m and "--replace" in m for m in doc.ingest_messages)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_positions(stores, tmp_path, bad):
    frames = nacl_frames(12)
    frames[7].positions[4, 1] = bad
    path = write_frames(tmp_path / "a.extxyz", frames)
    with pytest.raises(IngestError, match=r"non-finite coordinates in frame 7 \(atoms \[4\]"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=3)
    assert _nothing_stored(stores)  # two chunks had been staged: deleted
    frames[0].positions[0, 0] = np.nan
    path = write_frames(tmp_path / "b.extxyz", frames)
    with pytest.raises(IngestError, match=r"non-finite coordinates in frame 0"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)


def test_cell_collapse_and_volume_jumps(stores, tmp_path):
    frames = nacl_frames(12)
    frames[10].set_cell(np.diag([11.0, 11.0, 1e-8]))
    path = write_frames(tmp_path / "a.extxyz", frames)
    with pytest.raises(IngestError, match=r"frame 10: the cell's smallest perpendicular width is 1e-08 Å"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)
    frames = nacl_frames(12)
    for f in frames[6:]:
        f.set_cell(np.diag([11.0, 11.0, 13.2]))  # +20 % in one frame
    path = write_frames(tmp_path / "b.extxyz", frames)
    with pytest.raises(IngestError, match=r"frame 6: the cell volume changes by 20 %.*allow_volume_jumps"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)
    assert _nothing_stored(stores)
    doc = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, allow_volume_jumps=True)
    assert "frame 6" in doc.validation_overrides["allow_volume_jumps"]
    small = [f.copy() for f in nacl_frames(3)]
    for f in small:
        f.set_cell(np.diag([9.0, 11.0, 11.0]), scale_atoms=True)
    path = write_frames(tmp_path / "c.extxyz", small)
    with pytest.raises(IngestError, match=r"width is 9 Å, below 10 Å"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)
    no_cell = nacl_frames(2)
    for f in no_cell:
        f.pbc = False
    path = write_frames(tmp_path / "d.extxyz", no_cell)
    with pytest.raises(IngestError, match=r"frame 0 has no fully periodic cell"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)


def test_truncated_files(stores, tmp_path):
    path = write_frames(tmp_path / "full.extxyz", nacl_frames(30))
    data = path.read_bytes()
    cut = tmp_path / "cut.extxyz"
    frame_bytes = len(data) // 30  # all frames have the same size here
    cut.write_bytes(data[: 21 * frame_bytes + frame_bytes // 2])  # ends mid-frame: 21 complete frames
    with pytest.raises(IngestError, match=r"is truncated: frame 21 cannot be read.*allow_truncated=True"):
        ingest_trajectory(cut, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=4)
    assert _nothing_stored(stores)
    doc = ingest_trajectory(cut, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=4, allow_truncated=True)
    assert doc.n_frames == 21 and doc.truncated is True and "frame 21" in doc.truncation_reason
    assert load_trajectory(doc.trajectory_id, stores.trajectories, stores.data).n_frames == 21
    assert "frame 21" in doc.validation_overrides["allow_truncated"]
    # cut inside the last number of the last line: ASE reads it without complaint (with a wrong coordinate)
    mid_number = tmp_path / "mid.extxyz"
    mid_number.write_bytes(data[:-4])
    with pytest.raises(IngestError, match=r"last line has no newline: frame 29 was cut off"):
        ingest_trajectory(mid_number, "NaCl", None, 298.15, 0.5, 10, stores)
    # cut at 70 % = exactly after frame 21 of 30 (a frame boundary): only a stated frame count can tell; its
    # frames are those of the 21 complete frames kept above: the same run, refused
    boundary = tmp_path / "boundary.extxyz"
    boundary.write_bytes(data[: int(0.7 * len(data))])
    with pytest.raises(IngestError, match=r"its 21 frames are those of stored trajectory .* \(from cut.extxyz\)"):
        ingest_trajectory(boundary, "NaCl", None, 298.15, 0.5, 10, stores)
    with pytest.raises(IngestError, match=r"21 frames read of the expected 30"):
        ingest_trajectory(boundary, "NaCl", None, 298.15, 0.5, 10, stores, expected_frames=30)
    with pytest.raises(IngestError, match=r"more than expected_frames=20"):
        ingest_trajectory(boundary, "NaCl", None, 298.15, 0.5, 10, stores, expected_frames=20)


def test_step_counter_must_match_interval(stores, tmp_path):
    frames = nacl_frames(6)
    for k, f in enumerate(frames):
        f.info["step"] = 20 * k
    path = write_frames(tmp_path / "a.extxyz", frames)
    with pytest.raises(IngestError, match=r"step counter goes 0 -> 20 \(20 steps\) but --interval is 10"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)
    assert ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 20, stores).n_frames == 6


# ----------------------------------------------------------------------------------- staging and re-ingest


def test_reingest_is_a_noop_and_force_replaces(stores, tmp_path):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    first = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=5)
    again = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=5, campaign="c1")
    assert again.ingest_action == "unchanged" and "nothing to do" in again.ingest_messages[-1]
    assert again.campaign_ids == ["c1"]
    forced = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=4, force=True)
    assert forced.ingest_action == "replaced" and forced.n_chunks == 3 and forced.trajectory_id == first.trajectory_id
    back = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
    assert back.n_frames == 12 and stores.data.count({"kind": "ingest_staging"}) == 0
    assert stores.data.count() == 3  # the 3 chunks of the new layout only


def _child_ingest(path: str, stop: str) -> None:  # runs in a forked process (imports already done)
    os.environ["ELECTRODB_INGEST_TEST_STOP"] = stop
    from electrodb.settings import ElectroDBSettings
    from electrodb.store.stores import get_stores

    with get_stores(ElectroDBSettings()) as stores:
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=3, force=True)


def _killed_ingest(path: Path, point: str, marker: Path) -> None:
    """Run a (forced re-)ingest in another process, SIGKILL it once it parks at ``point``.

    See :func:`electrodb.io.ingest_staging.stop_for_test`.
    """
    proc = multiprocessing.get_context("fork").Process(target=_child_ingest, args=(str(path), f"{point}:{marker}"))
    proc.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.is_alive(), f"ingest ended (exit code {proc.exitcode}) before reaching {point}"
        assert time.monotonic() < deadline, f"ingest never reached {point}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("point", "doc_after_kill", "chunks_after_kill"),
    [  # 12 frames in chunks of 3: 4 stored chunks (+ 2 or 4 staged ones, or 4 already re-keyed)
        ("chunk:2", "completed", 6),
        ("before_switch:1", "completed", 8),
        ("switch:1", "running", 4),
    ],
)
def test_sigkill_during_reingest_never_destroys(stores, tmp_path, point, doc_after_kill, chunks_after_kill):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    first = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=3)
    before = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
    _killed_ingest(path, point, tmp_path / "stopped")
    meta = stores.trajectories.query_one({"trajectory_id": first.trajectory_id})
    assert meta["status"] == doc_after_kill and stores.data.count({"kind": "ingest_staging"}) == 1
    assert stores.data.count({"kind": "trajectory_chunk"}) == chunks_after_kill
    if doc_after_kill == "completed":  # killed before the switch: the stored trajectory is untouched
        assert meta["n_frames"] == 12 and meta["n_chunks"] == 4
        intact = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
        assert np.array_equal(intact.positions, before.positions)
    doc = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=3)
    expected = "finished the interrupted switch" if point.startswith("switch") else "removed stale staging data"
    assert any(expected in m for m in doc.ingest_messages), doc.ingest_messages
    assert doc.ingest_action == "unchanged" and doc.status == "completed"
    after = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
    assert np.array_equal(after.positions, before.positions)
    assert stores.data.count({"kind": "ingest_staging"}) == 0 and stores.data.count() == 4


def test_sigkill_during_first_ingest_leaves_nothing(stores, tmp_path):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    _killed_ingest(path, "chunk:2", tmp_path / "stopped")
    assert stores.trajectories.count() == 0 and stores.data.count({"kind": "trajectory_chunk"}) == 2
    doc = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, chunk_frames=3)
    assert doc.ingest_action == "created" and any("removed stale staging" in m for m in doc.ingest_messages)
    assert stores.data.count() == 4 and doc.n_frames == 12


def test_concurrent_ingest_of_the_same_file_is_refused(stores, tmp_path):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(4))
    doc = ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores)
    stores.data.update(  # a live writer (our parent process) is staging the same trajectory
        [
            {
                "blob_uuid": "ingest-staging:x",
                "kind": "ingest_staging",
                "staging_id": "x",
                "target_trajectory_id": doc.trajectory_id,
                "state": "writing",
                "pid": os.getppid(),
                "host": socket.gethostname(),
            }
        ],
        key="blob_uuid",
    )
    with pytest.raises(IngestError, match=r"another ingest of this file is running"):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 10, stores, force=True)


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_override_flag_and_noop_message(settings, tmp_path):
    from typer.testing import CliRunner

    from electrodb.cli.main import app

    path = write_frames(tmp_path / "hot.extxyz", nacl_frames(3))
    args = ["ingest", str(path), "--salt", "NaCl", "--temperature", "6000", "--timestep-fs", "0.5", "--interval", "10"]
    runner = CliRunner()
    refused = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    line = next(x for x in refused.output.splitlines() if x.startswith("error:"))
    assert "temperature 6000.0 K is above 5000 K" in line and "allow_unusual_temperature" in line
    created = runner.invoke(app, [*args, "--allow-unusual-temperature"], env={"COLUMNS": "80"})
    assert created.exit_code == 0, created.output
    assert "allowed by --allow-unusual-temperature: temperature 6000.0 K" in created.output
    assert "created " in created.output and "ingested 3 frames of NaCl" in created.output
    again = runner.invoke(app, [*args, "--allow-unusual-temperature"], env={"COLUMNS": "80"})
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output and "unchanged: " in again.output
    assert "ingested 3" not in again.output and "nothing ingested" in again.output
    forced = runner.invoke(app, [*args, "--allow-unusual", "--force"], env={"COLUMNS": "80"})
    assert forced.exit_code == 0 and "replaced the stored trajectory" in forced.output, forced.output


def test_source_run_temperature_is_judged_against_its_label(stores, tmp_path):
    """Velocities in the file give the run's real temperature; a 400 K run labelled 298 K is not a result."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    cluster = Atoms("ClLi", positions=[[0, 0, 0], [2.35, 0, 0]])
    atoms = build_box("LiCl", 40, 12.0, clusters=[cluster], seed=9)
    rng = np.random.default_rng(3)
    frames = []
    for frame in frames_of(atoms, 30):
        MaxwellBoltzmannDistribution(frame, temperature_K=400.0, rng=rng)
        frames.append(frame)
    hot = ingest_trajectory(write_frames(tmp_path / "hot.extxyz", frames), "LiCl", None, 298.15, 0.5, 10, stores)
    assert hot.temperature_status == "unconverged" and "298.15" in hot.temperature_reason
    assert hot.mean_temperature_K > 350
    plain = ingest_trajectory(  # another run from the same start (not the same run: other frames)
        write_frames(tmp_path / "plain.extxyz", frames_of(atoms, 30, seed=2)), "LiCl", None, 310.0, 0.5, 10, stores
    )
    assert plain.temperature_status == "insufficient"  # no velocities: the label cannot be checked
