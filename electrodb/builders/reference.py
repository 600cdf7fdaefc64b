"""Experimental values to put beside computed ones, read from the package's reference data (``electrodb/data``).

Only rows whose numbers are unambiguous are turned into numbers: a hydration number quoted with a
concentration dependence ("4.3(2) @6 m; 4.9(3) @3 m") is returned as a note, never as a single value. Ionic
conductivity (``conductivity_aqueous.csv``) is interpolated between tabulated molalities at 25 °C, never
extrapolated beyond them (:func:`reference_conductivity`).
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

__all__ = [
    "ConductivityPoint",
    "ExperimentalValue",
    "experimental_conductivity",
    "experimental_shell",
    "experimental_values",
    "reference_conductivity",
]


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
        # ion–water-oxygen shells, and water's own O···O first peak (the H2O row)
        if not (pair.endswith("-O") or pair.endswith("-(water)") or pair.startswith("O...O")):
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


@dataclass(frozen=True)
class ConductivityPoint:
    """One tabulated experimental conductivity: molality (mol/kg), κ (S/m), its source and its status."""

    molality: float
    kappa_S_m: float
    source: str
    status: str


def _conductivity_source(row: dict[str, str]) -> str:
    if row["status"] == "experimental-standard":
        return "NIST primary KCl conductivity standard (Wu et al. 1991/1994; CRC Handbook), 25 °C"
    if row["status"] == "evaluated-correlation":
        return (
            "McCleskey (2011) equations fitted to measured conductivities (25 °C, ≤ 1 mol/kg, mean deviation 0.1–0.2 %)"
        )
    return row["primary_source"]


@lru_cache(maxsize=1)
def _conductivity_table() -> dict[tuple[str, float], tuple[ConductivityPoint, ...]]:
    """Rows of ``conductivity_aqueous.csv`` by (salt, temperature °C), by molality; at a molality with both a
    measured standard and a correlation value, the standard."""
    found: dict[tuple[str, float], dict[float, ConductivityPoint]] = {}
    for row in _rows("conductivity_aqueous.csv"):
        key = (row["salt"], float(row["temperature_C"]))
        point = ConductivityPoint(
            float(row["molality_mol_kg"]), float(row["kappa_S_m"]), _conductivity_source(row), row["status"]
        )
        old = found.setdefault(key, {}).get(point.molality)
        if old is None or point.status == "experimental-standard":
            found[key][point.molality] = point
    return {k: tuple(v[m] for m in sorted(v)) for k, v in found.items()}


def reference_conductivity(salt: str, temperature_C: float = 25.0) -> tuple[ConductivityPoint, ...]:
    """Experimental conductivities of aqueous ``salt`` at ``temperature_C`` (°C; 25 and, for a few salts, the
    CRC Handbook's 20 °C table), by molality; empty when there are none."""
    return _conductivity_table().get((salt, float(temperature_C)), ())


def experimental_conductivity(salt: str, molality: float) -> ExperimentalValue | None:
    """κ (S/m) of aqueous ``salt`` at ``molality`` (mol/kg) and 25 °C, or None outside the tabulated range.

    Interpolates the molar conductivity κ/m linearly in √m between the two nearest tabulated molalities (the
    Debye–Hückel–Onsager form, so a 0.001–1 mol/kg grid interpolates to better than 0.1 %); never extrapolates,
    except that a molality within 0.1 % of the table's ends (a packed box's 1.0002 mol/kg) takes the end's value.
    """
    points = reference_conductivity(salt)
    if not points or not points[0].molality * 0.999 <= molality <= points[-1].molality * 1.001:
        return None
    molality = float(np.clip(molality, points[0].molality, points[-1].molality))
    ms = np.array([p.molality for p in points])
    i = int(np.clip(np.searchsorted(ms, molality), 1, len(ms) - 1))
    lo, hi = points[i - 1], points[i]
    if np.isclose(molality, hi.molality, rtol=1e-9, atol=0.0):
        return ExperimentalValue(hi.kappa_S_m, None, hi.source)
    x = (np.sqrt(molality) - np.sqrt(lo.molality)) / (np.sqrt(hi.molality) - np.sqrt(lo.molality))
    molar = (1 - x) * lo.kappa_S_m / lo.molality + x * hi.kappa_S_m / hi.molality
    source = lo.source if lo.source == hi.source else f"{lo.source}; {hi.source}"
    return ExperimentalValue(
        float(molar * molality), None, f"{source} — interpolated between {lo.molality:g} and {hi.molality:g} mol/kg"
    )


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
    if kind == "conductivity":
        return experimental_conductivity(species, molality)
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
