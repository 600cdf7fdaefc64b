"""Tiny committees trained inside the tests: K throw-away MACEs on Lennard-Jones labels of 14-atom smoke boxes.

:func:`smoke_labels` labels perturbed :func:`tests.model_factory.smoke_box` copies with the Lennard-Jones teacher of
:func:`tests.model_factory.train_smoke_model`; :func:`smoke_committee_settings` are its tiny MACE settings as a
:class:`~electrodb.models.committee.CommitteeSettings`; :func:`train_smoke_committee` trains (or reuses, from its
folder) a committee of them, every member trusted for the test session.
"""

from __future__ import annotations

import os
from pathlib import Path

from ase import Atoms
from ase.calculators.lj import LennardJones

from electrodb.models.committee import CommitteeSettings, CommitteeTraining, train_committee
from electrodb.models.files import file_sha256
from electrodb.models.labelling import label_configurations, perturb_configurations
from electrodb.models.mace_train import TrainingSettings
from tests.model_factory import smoke_box, trust_test_model

SAVED = "committee_training.json"


def lj_teacher() -> LennardJones:
    """The Lennard-Jones labels of :func:`tests.model_factory.train_smoke_model` (σ 0.86 Å, ε 0.05 eV, r_c 3 Å)."""
    return LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True)


def smoke_configurations(n: int, seed: int = 0, displacement_A: tuple[float, float] = (0.03, 0.08)) -> list[Atoms]:
    """``n`` perturbed copies of the smoke box (unlabelled)."""
    return perturb_configurations([smoke_box(seed)], n, displacement_A, 0.02, seed)


def smoke_labels(n: int, seed: int = 0, displacement_A: tuple[float, float] = (0.03, 0.08)) -> list[Atoms]:
    """``n`` perturbed smoke boxes labelled by :func:`lj_teacher`."""
    return list(label_configurations(smoke_configurations(n, seed, displacement_A), lj_teacher()))


def smoke_committee_settings(k: int = 2, epochs: int = 2, seed: int = 0, **updates) -> CommitteeSettings:
    """The tiny MACE of ``train_smoke_model`` (r_max 3.5 Å, 8 channels) as K committee members."""
    training = TrainingSettings(
        num_channels=8,
        max_L=0,
        correlation=2,
        max_ell=1,
        num_interactions=1,
        r_max=3.5,
        radial_MLP=[16],
        batch_size=4,
        max_num_epochs=epochs,
        start_swa=max(1, epochs - 1),
        valid_fraction=0.2,
        seed=seed,
        name="smoke_mace",
    )
    return CommitteeSettings(k=k, training=training, calibration_fraction=0.2, **updates)


def train_smoke_committee(
    workdir: str | os.PathLike[str], *, k: int = 2, n_configurations: int = 16, epochs: int = 2, reuse: bool = True
) -> CommitteeTraining:
    """A committee of K tiny MACEs (~15 s each on 2 cores); reused from ``workdir`` while its files are intact."""
    work = Path(workdir).expanduser().resolve()
    saved = work / SAVED
    if reuse and saved.is_file():
        previous = CommitteeTraining.model_validate_json(saved.read_text(encoding="utf-8"))
        if all(
            Path(p).is_file() and file_sha256(p) == i
            for p, i in zip(previous.model_paths, previous.model_ids, strict=True)
        ):
            for path in previous.model_paths:
                trust_test_model(path)
            return previous
    training = train_committee(smoke_labels(n_configurations), smoke_committee_settings(k, epochs), work)
    for path in training.model_paths:
        trust_test_model(path)
    saved.write_text(training.model_dump_json(), encoding="utf-8")
    return training
