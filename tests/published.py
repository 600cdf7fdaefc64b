"""Where the tests find the published LiCl NequIP material (Zhang, Pagotto, Gould & Duignan 2023; MIT licence).

The files (deployed model, the authors' g(r) and activity data) are never copied into this repository. They are
looked for in ``$ELECTRODB_LICL_DIR`` when set, else in ``../shared/external/zhang2023-licl-nequip`` beside the
repository (where CI lays them). A test that needs a file that is absent skips with a reason naming both places;
under ``CI=true`` it fails instead, since CI always has them. README.md says where the material comes from.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "ELECTRODB_LICL_DIR"
BESIDE_REPO = Path(__file__).resolve().parents[2] / "shared" / "external" / "zhang2023-licl-nequip"


def licl_dir() -> Path:
    """The folder of the published LiCl material: ``$ELECTRODB_LICL_DIR`` or the one beside the repository."""
    return Path(os.environ[ENV]) if os.environ.get(ENV) else BESIDE_REPO


def licl_file(name: str) -> Path:
    """Path of one published file; skips the test (fails under CI=true) when it is absent."""
    path = licl_dir() / name
    if not path.is_file():
        reason = (
            f"published LiCl material not found: {path} (set {ENV} to a folder with the files of the public "
            f"repository of arXiv:2310.12535, or lay shared/ beside the repository: {BESIDE_REPO})"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
