"""Trajectories out of ElectroDB (H5MD file, API frames, client) recomputed with MDAnalysis match the stored
g(r) and MSD: the exported coordinates are the ones ElectroDB analysed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores
from tests.synthetic import write_brownian_trajectory

mda = pytest.importorskip("MDAnalysis")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from electrodb.builders import run_builders

    settings = ElectroDBSettings(data_dir=tmp_path_factory.mktemp("electrodb-traj-out"))
    with get_stores(settings) as stores:
        doc = write_brownian_trajectory(stores, salt="LiCl", molality=2.0, n_waters=64, n_frames=100)
        run_builders(stores)
        structure = stores.structure.query_one({"trajectory_id": doc.trajectory_id})
        transport = stores.transport.query_one({"trajectory_id": doc.trajectory_id})
    return {"settings": settings, "doc": doc, "structure": structure, "transport": transport}


def _remove_com(u: Any) -> None:
    """ElectroDB's MSD convention: the whole system's (mass-weighted) centre-of-mass drift removed."""
    masses = u.atoms.masses.astype(np.float64)

    def shift(ts: Any) -> Any:
        com = masses @ ts.positions.astype(np.float64) / masses.sum()
        ts.positions = (ts.positions.astype(np.float64) - com).astype(np.float32)
        return ts

    u.trajectory.add_transformations(shift)


def mdanalysis_agreement(u: Any, structure: dict, transport: dict) -> dict[str, float]:
    """Max |Δg| of the cation–O_w g(r) and max relative |ΔMSD| of water O against the stored documents."""
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.analysis.rdf import InterRDF

    stored = structure["rdf"]["cation-O_w"]
    analysis = structure["provenance"]["analysis"]
    r_max, n_bins = float(analysis["r_max_A"]), int(analysis["n_bins"])
    r = np.asarray(stored["r"])
    assert len(r) == n_bins and r[1] - r[0] == pytest.approx(0.02, abs=1e-3)
    assert r[-1] + (r[1] - r[0]) / 2 == pytest.approx(r_max, abs=1e-3)
    # cations and water O are disjoint groups: no exclusion, normalisation N_a N_b (= ElectroDB's N_a N_b'); the
    # stored g(r) is over the frames after the structure's equilibration cut (t_equil_ps of its shells)
    t_equil = max((float(sh.get("t_equil_ps") or 0.0) for sh in structure["shells"].values()), default=0.0)
    times_all = np.array([ts.time for ts in u.trajectory])
    start = int(np.searchsorted(times_all - times_all[0], t_equil - 1e-9))
    rdf = InterRDF(
        u.select_atoms("segid CAT"), u.select_atoms("resname SOL and name OW"), nbins=n_bins, range=(0.0, r_max)
    ).run(start=start)
    np.testing.assert_allclose(rdf.results.bins, r, atol=1e-4)
    dg = float(np.max(np.abs(rdf.results.rdf - np.asarray(stored["g"]))))

    # stored MSD: COM drift removed, over the whole run (all time origins), or, as stored before, the mean over
    # n_blocks contiguous blocks of n_frames // n_blocks frames
    msd = transport["msd"]["water"]
    n_frames = u.trajectory.n_frames
    n_blocks = 1 if len(msd["t_ps"]) == n_frames else int(transport["provenance"]["analysis"]["settings"]["n_blocks"])
    n_b = n_frames // n_blocks
    _remove_com(u)
    blocks = []
    for k in range(n_blocks):
        m = EinsteinMSD(u, select="resname SOL and name OW", msd_type="xyz", fft=True)
        blocks.append(m.run(start=k * n_b, stop=(k + 1) * n_b).results.timeseries)
    mean = np.mean(blocks, axis=0)
    # lag times from the frames' times (ElectroDB's H5MD files also carry ts.dt, as an observable)
    times = np.array([ts.time for ts in u.trajectory[:n_b]])
    np.testing.assert_allclose(times - times[0], msd["t_ps"], atol=1e-5)
    want = np.asarray(msd["msd_A2"])
    rel = float(np.max(np.abs(mean[1:] - want[1:]) / want[1:]))
    return {"max_abs_dg": dg, "max_rel_dmsd": rel, "g_peak": float(np.max(stored["g"])), "msd_last": want[-1]}


def _check(agreement: dict[str, float]) -> None:
    assert agreement["g_peak"] > 1.0 and agreement["msd_last"] > 1.0  # non-trivial curves
    assert agreement["max_abs_dg"] < 2e-5  # stored g is rounded to 5 decimals
    assert agreement["max_rel_dmsd"] < 1e-4  # float32 coordinates, MSD rounded to 5 decimals


def test_h5md_export_reproduces_stored_rdf_and_msd(db: dict[str, Any], tmp_path: Path) -> None:
    import h5py

    from electrodb.io.export import export_trajectories

    tid = db["doc"].trajectory_id
    with get_stores(db["settings"], read_only=True) as stores:
        paths = export_trajectories(stores, tmp_path, {"trajectory_id": tid}, fmt="h5md")
    assert [p.name for p in paths] == [f"{tid}.h5md"] and paths[0].with_suffix(".pdb").is_file()
    assert not list(tmp_path.glob("*.part"))
    with h5py.File(paths[0]) as h5:
        pos = h5["particles/trajectory/position"]
        assert pos["value"].shape == (100, db["doc"].n_atoms, 3) and pos["value"].attrs["unit"] == "Angstrom"
        assert pos["time"].attrs["unit"] == "ps" and pos["time"][3] == pytest.approx(0.3)
        assert h5["particles/trajectory/box/edges/value"].shape == (100, 3, 3)
        assert list(h5["parameters/electrodb/mol_id"][:]) == db["doc"].mol_id
    u = mda.Universe(str(paths[0].with_suffix(".pdb")), str(paths[0]))
    assert set(u.atoms.resnames) == {"SOL", "LI", "CL"} and set(u.segments.segids) == {"WAT", "CAT", "ANI"}
    assert len(u.select_atoms("segid CAT")) == db["doc"].n_cations
    assert u.trajectory[10].time == pytest.approx(1.0)
    agreement = mdanalysis_agreement(u, db["structure"], db["transport"])
    print("H5MD vs stored:", agreement)
    _check(agreement)


def test_client_trajectory_reproduces_stored_rdf_and_msd(db: dict[str, Any], http: Any) -> None:
    from electrodb.api.client import ElectroDBAPIError, ElectroDBClient
    from electrodb.io.export import trajectory_universe

    api = ElectroDBClient(client=http)
    tid = db["doc"].trajectory_id
    u = api.get_trajectory(tid, as_="mdanalysis", chunk_frames=30)  # 4 requests across the 40-frame chunks
    assert u.trajectory.n_frames == 100 and u.residues.n_residues == max(db["doc"].mol_id) + 1
    with get_stores(db["settings"], read_only=True) as stores:
        local = trajectory_universe(stores, tid)
    np.testing.assert_array_equal(u.trajectory[57].positions, local.trajectory[57].positions)
    agreement = mdanalysis_agreement(u, db["structure"], db["transport"])
    print("client vs stored:", agreement)
    _check(agreement)

    frames = api.get_trajectory(tid, start=10, stop=13)
    assert len(frames) == 3 and frames[0].info["time_ps"] == pytest.approx(1.0)
    assert list(frames[0].arrays["role"]) == db["doc"].role and list(frames[0].arrays["mol_id"]) == db["doc"].mol_id
    np.testing.assert_allclose(frames[2].positions, local.trajectory[12].positions, atol=0)
    with pytest.raises(ElectroDBAPIError) as info:
        api.get_trajectory("no-such-trajectory")
    assert info.value.status == 404


def test_frames_route_bounds_and_paging(db: dict[str, Any], http: Any) -> None:
    from electrodb.api.params import MAX_FRAME_ATOMS

    tid = db["doc"].trajectory_id
    body = http.get(f"/trajectories/{tid}/frames", params={"_skip": 95, "_limit": 10}).json()
    assert body["meta"]["total_doc"] == 100 and body["data"]["frames"]["n_frames"] == 5
    assert body["meta"]["max_limit"] == min(10_000, MAX_FRAME_ATOMS // db["doc"].n_atoms)
    assert body["data"]["frames"]["positions"]["shape"] == [5, db["doc"].n_atoms, 3]
    assert http.get(f"/trajectories/{tid}/frames?_skip=500").json()["data"]["frames"]["n_frames"] == 0
    r = http.get(f"/trajectories/{tid}/frames?_limit=0")
    assert r.status_code == 422 and r.json()["error"]["status"] == 422
    r = http.get("/trajectories/nope/frames")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no trajectory 'nope'"


def test_h5md_times_are_float64_and_mdanalysis_reads_dt(stores: Any, tmp_path: Path) -> None:
    """Frames 0.002 ps apart: float32 times looked unevenly spaced to EinsteinMSD, and dt read as 1 ps."""
    import h5py
    from MDAnalysis.analysis.msd import EinsteinMSD

    from electrodb.io.export import export_trajectories

    doc = write_brownian_trajectory(stores, salt="LiCl", molality=2.0, n_waters=16, n_frames=600, frame_ps=0.002)
    (path,) = export_trajectories(stores, tmp_path, {"trajectory_id": doc.trajectory_id}, fmt="h5md")
    with h5py.File(path) as h5:
        time = h5["particles/trajectory/position/time"]
        assert time.dtype == np.float64 and time.attrs["unit"] == "ps"
        assert h5["particles/trajectory/box/edges/time"].id == time.id  # one dataset, hard-linked
        np.testing.assert_array_equal(time[:], 0.002 * np.arange(600))
        assert list(h5["particles/trajectory/position/step"][:3]) == [0, 2, 4]  # 1 fs MD steps
    u = mda.Universe(str(path.with_suffix(".pdb")), str(path))
    assert u.trajectory.dt == pytest.approx(0.002, rel=1e-12)
    assert u.trajectory[599].time == pytest.approx(1.198, rel=1e-12)
    msd = EinsteinMSD(u, select="segid CAT", msd_type="xyz", fft=True).run()
    assert np.allclose(np.diff(msd.times), np.diff(msd.times)[0])  # EinsteinMSD's own test for even spacing
    assert len(msd.results.delta_t_values) == 600  # the FFT path: one lag per frame, not one per distinct Δt
    assert msd.results.delta_t_values[1] == pytest.approx(0.002, rel=1e-12)


@pytest.mark.parametrize("target", ["file", "/dev/null"])
def test_trajectory_export_onto_a_file_is_a_one_line_error(stores: Any, tmp_path: Path, target: str) -> None:
    from typer.testing import CliRunner

    from electrodb.cli.main import app

    write_brownian_trajectory(stores, salt="NaCl", molality=2.0, n_waters=32, n_frames=5)
    out = tmp_path / "existing.txt" if target == "file" else Path(target)
    if target == "file":
        out.write_text("keep me\n")
    result = CliRunner().invoke(app, ["export", "--trajectories", "--out", str(out)], env={"COLUMNS": "80"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert f"--out {out} exists and is not a folder" in line and "give a new or existing folder" in line
    if target == "file":
        assert out.read_text() == "keep me\n"
