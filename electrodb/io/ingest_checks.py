"""Validation and reading of external trajectories: range checks with overrides, per-frame checks, truncation.

Holds :class:`IngestError` (the one error of the whole ingest; its message names the problem and the fix), the
override bookkeeping (:class:`RangeChecks`), the checks of the run settings and of every frame
(:class:`FrameValidator`) and the frame reader that detects truncated files (:func:`read_frames`).

* finite positions and cell in every frame (never overridable);
* a periodic cell whose smallest perpendicular width is at least ``min_cell_width_A`` (10 Å = 2 × 5 Å: the
  structure builder's RDFs reach half the smallest width, and the first-shell minima of ion–water RDFs lie
  at 2.6–3.9 Å), and a volume that changes by at most 10 % between frames and stays within a factor 1.5 of
  frame 0 (NPT fluctuates by far less);
* temperature finite and in (0, 5000] K, timestep finite and in (0, 20] fs, ``interval`` ≥ 1;
* the stated time between frames (``interval × timestep_fs``) against the file's own clock, wherever it has one:
  an MD step counter (:data:`STEP_KEYS`: LAMMPS text dumps' ``timestep``, extxyz ``step``) must advance by
  ``interval`` steps per frame, and a per-frame time (:data:`TIME_KEYS`: extxyz ``time_fs``, ``time_ps``, or
  ``time``/``Time``, read as fs or ps, whichever fits: CP2K and GPUMD write fs, ElectroDB's own export ps) must
  reach ``k × interval × timestep_fs`` at frame ``k`` within half a frame interval. ASE reads no times from
  XTC/TRR files (it has no reader for them), VASP XDATCAR or ASE ``.traj``: for those only the stated interval
  counts;
* no atom jumps: between consecutive frames each atom's minimum-image displacement is at most
  :data:`MAX_SPEED_A_PER_FS` (1 Å/fs = 100 km/s) × the frame interval in fs, and its coordinates move by at
  most one box length per cell direction (a wrapped file's boundary crossing). 1 Å/fs is 15 standard
  deviations of the Maxwell–Boltzmann velocity of H at 5000 K (60 at 300 K): no atom of a liquid moves that
  fast; a jump is a corrupt frame (one atom at 1e12 Å) or an interval that understates the time between
  frames;
* truncation: a file ASE cannot read to the end (a frame cut off mid-way) or a text file whose last line has
  no newline (ASE silently reads a half-written last number) raises :class:`Truncated` after the complete
  frames before the damage.

The overridable checks go through :meth:`RangeChecks.require`, which either raises or records the override used
(flag -> what it let through); the flags are :data:`OVERRIDE_FLAGS`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import iread

from electrodb.analysis.periodic import smallest_widths

__all__ = [
    "MAX_SPEED_A_PER_FS",
    "MAX_TEMPERATURE_K",
    "MAX_TIMESTEP_FS",
    "MAX_VOLUME_RATIO",
    "MAX_VOLUME_STEP",
    "MIN_CELL_WIDTH_A",
    "OVERRIDE_FLAGS",
    "STEP_KEYS",
    "TIME_KEYS",
    "FrameValidator",
    "IngestError",
    "RangeChecks",
    "Truncated",
    "check_settings",
    "read_frames",
]

MIN_CELL_WIDTH_A = 10.0  # 2 × 5 Å
MAX_TEMPERATURE_K = 5000.0
MAX_TIMESTEP_FS = 20.0
MAX_VOLUME_STEP = 0.10  # |V_k / V_{k-1} - 1|
MAX_VOLUME_RATIO = 1.5  # V_k / V_0 within [1/1.5, 1.5]
STEP_KEYS = ("step", "timestep", "Step", "Timestep", "md_step")
#: Per-frame time keys of ``Atoms.info`` and their unit (None: fs or ps, whichever fits the stated interval).
TIME_KEYS: tuple[tuple[str, str | None], ...] = (("time_fs", "fs"), ("time_ps", "ps"), ("time", None), ("Time", None))
_FS_PER = {"fs": 1.0, "ps": 1000.0}
MAX_SPEED_A_PER_FS = 1.0  # 100 km/s: 15 σ of the velocity of H at 5000 K
OVERRIDE_FLAGS = (
    "allow_unusual_temperature",
    "allow_unusual_timestep",
    "allow_small_cell",
    "allow_volume_jumps",
    "allow_irregular_steps",
    "allow_atom_jumps",
    "allow_truncated",
)


class IngestError(ValueError):
    """The external trajectory cannot be interpreted as the stated electrolyte, or fails validation."""


# --------------------------------------------------------------------------------------------- validation


class RangeChecks:
    """Range checks that an override flag may let through; records each override used."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.used: dict[str, str] = {}

    def require(self, ok: bool, flag: str, problem: str, fix: str) -> None:
        """Pass when ``ok``; else record the override ``flag`` if it is allowed, or raise :class:`IngestError`.

        Parameters
        ----------
        ok
            Whether the value is within range.
        flag
            Override flag (one of :data:`OVERRIDE_FLAGS`) that lets the value through.
        problem, fix
            What is wrong and how to fix it, for the message (``problem`` is also what the override records).
        """
        if ok:
            return
        if flag in self.allowed:
            self.used.setdefault(flag, problem)
            return
        option = "--" + flag.replace("_", "-")
        raise IngestError(
            f"{problem}; {fix}, or pass {option} (Python: {flag}=True; or --allow-unusual) if it is intended"
        )


def check_settings(temperature: float, timestep_fs: float, interval: int, checks: RangeChecks) -> None:
    """Check the run settings the user gives: temperature (K), MD timestep (fs), ``interval`` (MD steps per frame).

    Non-physical values (non-finite, ≤ 0, a non-integer interval) always raise :class:`IngestError`; unusual
    ones (above :data:`MAX_TEMPERATURE_K`, :data:`MAX_TIMESTEP_FS`) go through ``checks``.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise IngestError(
            f"temperature {temperature} K is not a physical temperature (it must be finite and > 0 K); "
            "give --temperature in kelvin"
        )
    checks.require(
        temperature <= MAX_TEMPERATURE_K,
        "allow_unusual_temperature",
        f"temperature {temperature} K is above {MAX_TEMPERATURE_K:g} K, beyond any liquid electrolyte",
        "check that --temperature is in kelvin",
    )
    if not np.isfinite(timestep_fs) or timestep_fs <= 0:
        raise IngestError(
            f"timestep {timestep_fs} fs is not a physical MD timestep (it must be finite and > 0 fs); "
            "give --timestep-fs in femtoseconds"
        )
    checks.require(
        timestep_fs <= MAX_TIMESTEP_FS,
        "allow_unusual_timestep",
        f"timestep {timestep_fs} fs is above {MAX_TIMESTEP_FS:g} fs, longer than any stable atomistic MD step",
        "check that --timestep-fs is the MD step in fs (not the time between stored frames: that is "
        "--timestep-fs × --interval)",
    )
    if isinstance(interval, bool) or not float(interval).is_integer() or interval < 1:
        raise IngestError(f"--interval must be a positive whole number of MD steps between frames, got {interval}")


def _frame_step(frame: Atoms) -> int | None:
    for key in STEP_KEYS:
        value = frame.info.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return None


def _frame_time(frame: Atoms) -> tuple[str, float, str | None] | None:
    """The first per-frame time of :data:`TIME_KEYS` in ``frame.info``: (key, value, unit or None), or None."""
    for key, unit in TIME_KEYS:
        value = frame.info.get(key)
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            if np.isfinite(value):
                return key, float(value), unit
    return None


class FrameValidator:
    """Per-frame checks: finite data, sane cell, bounded volume change, the file's clock, no atom jumps.

    Parameters
    ----------
    checks
        The overridable checks and their overrides.
    interval, timestep_fs
        The stated MD steps between frames and MD timestep (fs).
    min_width
        Smallest allowed perpendicular cell width (Å).

    After each call, ``displacement`` holds every atom's minimum-image displacement (Å, ``(n_atoms, 3)``) from
    the previous frame (zeros at frame 0), for the caller to unwrap with.
    """

    def __init__(self, checks: RangeChecks, interval: int, timestep_fs: float, min_width: float) -> None:
        self.checks = checks
        self.interval = interval
        self.timestep_fs = timestep_fs
        self.frame_fs = interval * timestep_fs
        self.min_width = min_width
        self.v0: float | None = None
        self.v_prev: float | None = None
        self.step_prev: int | None = None
        self.time0: tuple[int, str, float] | None = None
        self.time_unit: str | None = None
        self.pos_prev: np.ndarray | None = None
        self.displacement: np.ndarray = np.zeros((0, 3))

    def __call__(self, k: int, frame: Atoms) -> None:
        pos = frame.get_positions()
        if not np.isfinite(pos).all():
            bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
            raise IngestError(
                f"non-finite coordinates in frame {k} (atoms {bad[:5].tolist()} are NaN/inf): the run blew up or "
                f"the file is corrupt; keep only the frames before it (index=':{k}')"
                if k
                else f"non-finite coordinates in frame 0 (atoms {bad[:5].tolist()} are NaN/inf): the file is corrupt"
            )
        cell = frame.cell.array
        if not np.isfinite(cell).all():
            raise IngestError(f"non-finite cell in frame {k}: the file is corrupt")
        if frame.cell.rank < 3 or not frame.pbc.all():
            raise IngestError(
                f"frame {k} has no fully periodic cell (cell {np.round(frame.cell.lengths(), 3).tolist()} Å, "
                f"pbc {frame.pbc.tolist()}); ElectroDB needs periodic boxes: give the box in the file"
            )
        width = float(smallest_widths(cell))
        volume = abs(float(np.linalg.det(cell)))
        if width <= 0 or volume <= 0:
            raise IngestError(f"frame {k} has a degenerate cell (zero volume): the file is corrupt")
        self.checks.require(
            width >= self.min_width,
            "allow_small_cell",
            f"frame {k}: the cell's smallest perpendicular width is {width:.4g} Å, below {self.min_width:g} Å "
            f"(RDFs and coordination shells need half-widths of at least {self.min_width / 2:g} Å)",
            "check the cell units (Å) or the cell of that frame",
        )
        if frame.has("momenta") and not np.isfinite(frame.get_momenta()).all():
            raise IngestError(f"non-finite velocities in frame {k}: the run blew up or the file is corrupt")
        if self.v0 is None:
            self.v0 = volume
        else:
            assert self.v_prev is not None
            step_change = abs(volume / self.v_prev - 1.0)
            self.checks.require(
                step_change <= MAX_VOLUME_STEP,
                "allow_volume_jumps",
                f"frame {k}: the cell volume changes by {100 * step_change:.3g} % from the previous frame "
                f"({self.v_prev:.4g} -> {volume:.4g} Å³), more than {100 * MAX_VOLUME_STEP:g} %",
                "check the cell of that frame (a collapsing cell or frames of another run)",
            )
            ratio = volume / self.v0
            self.checks.require(
                1.0 / MAX_VOLUME_RATIO <= ratio <= MAX_VOLUME_RATIO,
                "allow_volume_jumps",
                f"frame {k}: the cell volume is {ratio:.3g} × that of frame 0, outside [1/{MAX_VOLUME_RATIO:g}, "
                f"{MAX_VOLUME_RATIO:g}]",
                "check the cell of that frame (a collapsing cell or frames of another run)",
            )
        self.v_prev = volume
        step = _frame_step(frame)
        if step is not None and self.step_prev is not None:
            delta = step - self.step_prev
            self.checks.require(
                delta == self.interval,
                "allow_irregular_steps",
                f"frame {k}: the file's MD step counter goes {self.step_prev} -> {step} ({delta} steps) but "
                f"--interval is {self.interval}",
                "fix --interval, or remove duplicated/missing frames (a restarted run appended to the file)",
            )
        self.step_prev = step
        self._check_time(k, frame)
        self.displacement = np.zeros_like(pos) if self.pos_prev is None else self._check_jumps(k, frame, pos, cell)
        self.pos_prev = pos

    def _check_time(self, k: int, frame: Atoms) -> None:
        """The file's per-frame time at frame ``k`` against ``k × interval × timestep_fs`` since its first time."""
        found = _frame_time(frame)
        if found is None:
            return
        key, t, unit = found
        if self.time0 is None or self.time0[1] != key:
            self.time0, self.time_unit = (k, key, t), unit
            return
        k0, _, t0 = self.time0
        n = k - k0
        want_fs = n * self.frame_fs
        for candidate in [self.time_unit] if self.time_unit else ["fs", "ps"]:
            if abs((t - t0) * _FS_PER[candidate] - want_fs) <= 0.5 * self.frame_fs + 1e-6 * want_fs:
                self.time_unit = candidate
                return
        per_frame = (t - t0) / n
        unit = self.time_unit or "fs"
        steps = per_frame * _FS_PER[unit] / self.timestep_fs
        shown = f"{per_frame:.6g} {unit}" if self.time_unit else f"{per_frame:.6g} fs or ps ({key!r} has no unit)"
        self.checks.require(
            False,
            "allow_irregular_steps",
            f"frame {k}: the file's {key!r} goes {t0:g} -> {t:g} over {n} frame(s), {shown} per frame, but "
            f"--interval × --timestep-fs is {self.interval} × {self.timestep_fs:g} fs = {self.frame_fs:g} fs per "
            "frame",
            f"fix --interval or --timestep-fs (the file's times say {steps:.4g} steps of {self.timestep_fs:g} fs "
            f"per frame{'' if self.time_unit else ', if its time is in fs'}), or remove duplicated/missing frames",
        )

    def _check_jumps(self, k: int, frame: Atoms, pos: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Refuse atoms that move farther from frame ``k - 1`` than any atom can; return the min-image steps (Å)."""
        assert self.pos_prev is not None
        frac = np.linalg.solve(cell.T, (pos - self.pos_prev).T).T
        shift = np.round(frac)
        step = (frac - shift) @ cell
        limit = MAX_SPEED_A_PER_FS * self.frame_fs
        moved = np.linalg.norm(step, axis=1)
        crossed = np.abs(shift).max(axis=1)
        bad = np.flatnonzero((crossed > 1) | (moved > limit))
        if len(bad):
            raw = np.linalg.norm(pos - self.pos_prev, axis=1)
            i = int(bad[np.argmax(np.where(crossed[bad] > 1, raw[bad], moved[bad]))])
            how = (
                f"{raw[i]:.4g} Å (more than one box length: no boundary crossing explains it)"
                if crossed[i] > 1
                else f"{moved[i]:.4g} Å (nearest image)"
            )
            self.checks.require(
                False,
                "allow_atom_jumps",
                f"frame {k}: atom {i} ({frame.get_chemical_symbols()[i]}) moves {how} from frame {k - 1}, farther "
                f"than any atom can in {self.frame_fs:g} fs (at most "
                f"{MAX_SPEED_A_PER_FS:g} Å/fs × {self.frame_fs:g} fs = {limit:.4g} Å)"
                + (f"; {len(bad)} atoms jump in that frame" if len(bad) > 1 else ""),
                f"the file is corrupt at that frame (keep the frames before it: index=':{k}'), or --interval × "
                "--timestep-fs understates the time between frames",
            )
        return step


# ------------------------------------------------------------------------------------------------ reading


class Truncated(Exception):
    """The file breaks off: ``n_complete`` frames could be read before the damage, ``reason`` says what broke."""

    def __init__(self, n_complete: int, reason: str) -> None:
        super().__init__(reason)
        self.n_complete, self.reason = n_complete, reason


def _missing_final_newline(path: Path) -> bool:
    """A text file whose last byte is not a newline was cut mid-line (binary files: never)."""
    with path.open("rb") as fh:
        if b"\0" in fh.read(8192):
            return False
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) not in (b"\n", b"\r")


def read_frames(path: Path, fmt: str | None, index: str) -> Iterator[Atoms]:
    """Frames as ASE reads them; raises :class:`Truncated` where reading breaks off or the last line is cut."""
    cut_last = index == ":" and _missing_final_newline(path)
    pending: Atoms | None = None
    n_yielded = 0
    reader = iread(str(path), index=index, format=fmt)
    while True:
        try:
            frame = next(reader)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises many types for a frame it cannot parse
            if pending is None:
                raise IngestError(f"{path}: could not read with ASE (format={fmt or 'auto'}): {exc}") from exc
            yield pending
            n_yielded += 1
            raise Truncated(n_yielded, f"frame {n_yielded} cannot be read ({type(exc).__name__}: {exc})") from exc
        if pending is not None:
            yield pending
            n_yielded += 1
        pending = frame
    if pending is None:
        return
    if cut_last:
        raise Truncated(
            n_yielded, f"the file's last line has no newline: frame {n_yielded} was cut off while being written"
        )
    yield pending
