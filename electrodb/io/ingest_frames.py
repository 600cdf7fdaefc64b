"""The frames of an external file into chunks: validated, unwrapped on the fly, with what each frame records.

:func:`write_frames` streams the frames through the :class:`~electrodb.io.ingest_checks.FrameValidator` and
appends them to a :class:`~electrodb.store.frames.TrajectoryWriter`: positions unwrapped with the validator's
minimum-image displacements (so wrapped dumps give exact diffusion), the cell of every frame, the time
``k × frame interval``, the potential energy, the temperature from the momenta and the stress, each where the
file has it (NaN otherwise). :func:`check_frame_count` compares the frames read with the frames expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from ase import Atoms

from electrodb.io.ingest_checks import FrameValidator, IngestError, Truncated
from electrodb.store.frames import TrajectoryWriter

__all__ = ["check_frame_count", "write_frames"]


def write_frames(
    writer: TrajectoryWriter,
    first: Atoms,
    frames: Iterator[Atoms],
    validate: FrameValidator,
    frame_ps: float,
    path: Path,
    on_chunk: Callable[[], None],
) -> tuple[int, str] | None:
    """Unwrap, validate and append every frame; return (complete frames, reason) if the file is truncated.

    Parameters
    ----------
    writer
        Where the frames go (a staging id).
    first
        Frame 0, already validated; ``frames`` the reader positioned at frame 1.
    frame_ps
        Time between frames (ps).
    path
        The file, for messages.
    on_chunk
        Called after every chunk written (the staging heartbeat).
    """
    symbols = first.get_chemical_symbols()
    unwrapped = first.get_positions()
    writer.append(unwrapped, first.cell.array, 0.0, _energy(first), _temperature(first), stress=_stress(first))
    n_chunks = writer.n_chunks
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return None
        except Truncated as exc:
            return exc.n_complete, exc.reason
        k = writer.next_frame
        if frame.get_chemical_symbols() != symbols:
            raise IngestError(f"{path}: frame {k} has different atoms than frame 0")
        validate(k, frame)
        unwrapped = unwrapped + validate.displacement
        cell = frame.cell.array
        writer.append(unwrapped, cell, k * frame_ps, _energy(frame), _temperature(frame), stress=_stress(frame))
        if writer.n_chunks != n_chunks:
            n_chunks = writer.n_chunks
            on_chunk()


def check_frame_count(
    n_read: int, truncation: tuple[int, str] | None, expected_frames: int | None, path: Path
) -> tuple[int, str] | None:
    """Compare the frames read with ``expected_frames``: more is an error, fewer a truncation (complete, reason)."""
    if expected_frames is None or truncation is not None:
        return truncation
    if n_read > expected_frames:
        raise IngestError(
            f"{path}: {n_read} frames read, more than expected_frames={expected_frames}; "
            "fix expected_frames or the index"
        )
    if n_read < expected_frames:
        return n_read, f"{n_read} frames read of the expected {expected_frames}"
    return None


def _energy(frame: Atoms) -> float:
    try:
        value = float(frame.get_potential_energy())
    except Exception:  # no calculator, or one without an energy: not recorded
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def _temperature(frame: Atoms) -> float:
    return float(frame.get_temperature()) if frame.has("momenta") else float("nan")


def _stress(frame: Atoms) -> np.ndarray | None:
    try:
        stress = np.asarray(frame.get_stress(voigt=False), dtype=float)
    except Exception:  # no calculator, or one without a stress: not recorded
        return None
    return stress if stress.shape == (3, 3) and np.isfinite(stress).all() else None
