"""Smoke test of ``benchmarks/segments.py`` (run until converged vs one fixed run length, issue 20): its quick
variant runs end to end on synthetic trajectories, every system converges under ``until``, and the saving against
the fixed baseline reaches the issue's target of 2×. The full numbers are in docs/campaigns.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "segments.py"


def _benchmark() -> Any:
    """benchmarks/segments.py as a module (the benchmarks are scripts, not a package)."""
    name = "electrodb_benchmark_segments"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_quick_benchmark(stores, capsys) -> None:
    bench = _benchmark()
    res = bench.run_benchmark(stores, quick=True, tight=(0.25,), orders=2)
    assert res["all_converged"], [(r.source.system.name, r.decision, r.reason) for r in res["runs"]]
    # the baseline length is at least the longest until run's first converged grid length, and the saving holds
    assert res["baseline_ps"] >= max(r.produced for r in res["runs"]) - bench.GRID_PS
    assert res["ratio"] >= bench.TARGET_RATIO, res["ratio"]
    # a system's trajectory is extendable: a longer run starts with the shorter one's frames
    case = res["runs"][0].source.case
    again = bench.generate(res["runs"][0].source.system, 60.0)
    assert (again.positions == case.positions[: again.n_frames]).all()
    shared = res["shared"][0.25]
    assert set(shared) == set(bench.POLICIES)
    n = len(res["runs"])
    # decide() rounds a segment capped by the budget up to the frame grid: at most one frame over per system
    frame_hours = sum(r.source.system.frame_ps / r.source.system.ps_per_hour for r in res["runs"])
    for key in bench.POLICY_RUNS:  # a tight total converges some systems, never more than exist
        assert 0 < shared[key]["converged"] <= n, key
        assert shared[key]["hours"] <= 0.25 * res["baseline_core_hours"] + frame_hours, key
    assert bench.report(res) == 0
    out = capsys.readouterr().out
    assert "ratio fixed / until" in out and "PASS" in out
