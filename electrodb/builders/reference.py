"""Experimental values to put beside computed ones, read from the package's reference data (``electrodb/data``).

Only rows whose numbers are unambiguous are turned into numbers: a hydration number quoted with a
concentration dependence ("4.3(2) @6 m; 4.9(3) @3 m") is returned as a note, never as a single value.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from electrodb.documents.registry import PROPERTIES
from electrodb.systems.boxes import solution_density
from electrodb.systems.chemistry import parse_salt

__all__ = ["ExperimentalValue", "experimental_shell", "experimental_values"]


@dataclass(frozen=True)
class ExperimentalValue:
    value: float | None
    error: float | None
    source: str
    note: str = ""


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("electrodb.data").joinpath(name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


_PLAIN_NUMBER = re.compile(r"^~?(\d+(?:\.\d+)?)(?:\s*\+-\s*(\d+(?:\.\d+)?))?(?:\s|\(|$)")


def _plain_number(text: str) -> tuple[float, float | None] | None:
    if "@" in text or "->" in text:
        return None
    m = _PLAIN_NUMBER.match(text.strip())
    if not m:
        return None
    return float(m.group(1)), float(m.group(2)) if m.group(2) else None


@lru_cache(maxsize=1)
def _diffusion() -> dict[str, ExperimentalValue]:
    out: dict[str, ExperimentalValue] = {}
    for row in _rows("diffusion_25C.csv"):
        condition = row["condition"]
        if condition not in ("infinite dilution", "pure water 25 C") or row["species"] in out:
            continue
        label = "infinite dilution" if condition == "infinite dilution" else "pure water"
        out[row["species"]] = ExperimentalValue(float(row["D"]), None, f"{row['primary_source']} ({label}, 25 °C)")
    return out


@lru_cache(maxsize=1)
def _shells() -> dict[str, dict[str, ExperimentalValue]]:
    out: dict[str, dict[str, ExperimentalValue]] = {}
    for row in _rows("structure_hydration_shell.csv"):
        if not row["status"].startswith("experimental"):
            continue
        ion, pair = row["ion"], row["pair"]
        if not (pair.endswith("-O") or pair.endswith("-(water)")):
            continue
        entry = out.setdefault(ion, {})
        source = f"{row['primary_source']} ({row['method_conditions']})"
        if row["r_first_peak_A"] and "r" not in entry:
            r_text = row["r_first_peak_A"].split("-")[0]
            try:
                entry["r"] = ExperimentalValue(float(r_text), None, source, row["r_first_peak_A"])
            except ValueError:
                pass
        cn_text = row["hydration_number_CN"]
        if cn_text and "cn" not in entry:
            parsed = _plain_number(cn_text)
            entry["cn"] = ExperimentalValue(
                parsed[0] if parsed else None, parsed[1] if parsed else None, source, cn_text
            )
    return out


def _density(salt: str, molality: float) -> ExperimentalValue | None:
    value, source = solution_density(parse_salt(salt), molality)
    if source == "estimate":
        return None
    return ExperimentalValue(value, None, f"{source} correlation fitted to experimental densities, 25 °C")


def experimental_shell(ion: str) -> dict[str, ExperimentalValue]:
    """Experimental first hydration shell of ``ion``: ``{"r": first-peak distance (Å), "cn": hydration number}``,
    each present only where the reference data has an unambiguous value (25 °C)."""
    return _shells().get(ion, {})


def _reference(kind: str, which: str, salt: str, cation: str, anion: str, molality: float) -> ExperimentalValue | None:
    """The experimental value of one registry reference ``(kind, which)`` (:data:`~electrodb.documents.registry.
    EXPERIMENT_KINDS`) for this electrolyte, or None."""
    species = {"cation": cation, "anion": anion, "water": "H2O", "salt": salt}[which]
    if kind == "diffusion":
        return _diffusion().get(species)
    if kind == "shell_r":
        return experimental_shell(species).get("r")
    if kind == "shell_cn":
        return experimental_shell(species).get("cn")
    if kind == "density":
        return _density(salt, molality)
    raise ValueError(f"unknown experimental reference kind {kind!r}")


def experimental_values(salt: str, cation: str, anion: str, molality: float, temperature: float) -> dict[str, dict]:
    """``{"exp_P": value, "exp_P_err": error, "exp_P_source": text}`` for the summary properties with data.

    Which property gets which reference is the registry's ``experiment`` field
    (:data:`electrodb.documents.registry.PROPERTIES`). Values are at 25 °C; for other temperatures none are
    returned, since comparing them would mislead.
    """
    if not np.isclose(temperature, 298.15, atol=1.0):
        return {}
    out: dict[str, dict] = {}
    for name, entry in PROPERTIES.items():
        if entry.experiment is None:
            continue
        exp = _reference(*entry.experiment, salt, cation, anion, molality)
        if exp is None:
            continue
        out[f"exp_{name}"] = exp.value
        out[f"exp_{name}_err"] = exp.error
        out[f"exp_{name}_source"] = exp.source + (f" — {exp.note}" if exp.note else "")
    return out
