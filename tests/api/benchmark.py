"""The API load benchmark (``benchmarks/api_load.py``) as a module, for the tests that check its client and its
arguments (the benchmarks are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def api_load_module() -> Any:
    """benchmarks/api_load.py as a module (the benchmarks are scripts, not a package)."""
    name = "electrodb_benchmark_api_load"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / "api_load.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
