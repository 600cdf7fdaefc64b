"""Export columns from the documents beside a summary: its concentration series' ``thermo`` document (a_cc, γ±,
φ with their statuses) and the salt's TI ``solvation`` document; and the cell converters the export shares.

:mod:`electrodb.io.export` puts these columns into every row (see its docstring for the whole table).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np

__all__ = [
    "SOLVATION_COLUMNS",
    "THERMO_COLUMNS",
    "THERMO_STATUS_COLUMNS",
    "as_float",
    "as_str",
    "solvation_columns",
    "thermo_columns",
]


def as_float(value: Any) -> float | None:
    """``value`` as a float cell (None for None, strings, booleans and anything not a number)."""
    if value is None or isinstance(value, (str, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_str(value: Any) -> str | None:
    """``value`` as a text cell (None stays None; dates in ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


THERMO_COLUMNS = ("a_cc", "a_cc_err", "gamma_pm", "gamma_pm_err", "exp_gamma_pm", "phi", "phi_err", "exp_phi")
THERMO_STATUS_COLUMNS = ("a_cc_status", "a_cc_reason", "thermo_status", "thermo_reason")
_STATUS_RANK = {"converged": 0, "input": 1, "unconverged": 2, "insufficient": 3}


def thermo_columns(doc: dict[str, Any], thermo: dict[str, Any] | None) -> dict[str, Any]:
    """Kirkwood–Buff a_cc, γ± and φ (molal scale) of this electrolyte from its series' ``thermo`` document.

    Experimental γ± and φ are the Pitzer–Mayorga values at this molality (``experiment.pitzer_at_series``).
    ``thermo_status``/``thermo_reason`` are the document's verdict (``ok`` / ``derivative_only``: legacy
    documents built before convergence statuses); ``a_cc_status``/``a_cc_reason`` the least favourable verdict
    of this electrolyte's systems. An ``insufficient`` a_cc is written without value and error.
    """
    out: dict[str, Any] = dict.fromkeys(THERMO_COLUMNS + THERMO_STATUS_COLUMNS)
    if not thermo:
        return out
    out["thermo_status"] = as_str(thermo.get("status"))
    out["thermo_reason"] = as_str(thermo.get("reason"))
    eid = doc.get("electrolyte_id")
    systems = [s for s in thermo.get("systems") or [] if s.get("electrolyte_id") == eid and "a_cc" in s]
    statuses = [str(s["a_cc_status"]) for s in systems if s.get("a_cc_status")]
    if statuses:
        out["a_cc_status"] = max(statuses, key=lambda x: _STATUS_RANK.get(x, 4))
        reasons = [str(s["a_cc_reason"]) for s in systems if s.get("a_cc_reason")]
        out["a_cc_reason"] = "; ".join(dict.fromkeys(reasons))
    if systems and out["a_cc_status"] != "insufficient":  # insufficient: no value, whatever was stored
        out["a_cc"] = as_float(np.mean([s["a_cc"] for s in systems]))
        errs = [s.get("a_cc_err") for s in systems]
        out["a_cc_err"] = as_float(np.sqrt(np.sum(np.square(errs))) / len(errs)) if None not in errs else None
    molality = as_float(doc.get("molality"))
    series = thermo.get("series") or {}
    for m_list, key_map in (
        (
            series.get("molality"),
            {"gamma_pm": "gamma", "gamma_pm_err": "gamma_err", "phi": "phi", "phi_err": "phi_err"},
        ),
        (
            (thermo.get("experiment") or {}).get("pitzer_at_series", {}).get("molality"),
            {"exp_gamma_pm": "gamma", "exp_phi": "phi"},
        ),
    ):
        if not m_list or molality is None:
            continue
        k = int(np.argmin(np.abs(np.asarray(m_list) - molality)))
        if abs(m_list[k] - molality) > 1e-5:
            continue
        source = series if "gamma_pm" in key_map else thermo["experiment"]["pitzer_at_series"]
        for column, key in key_map.items():
            values = source.get(key)
            out[column] = as_float(values[k]) if values else None
    return out


SOLVATION_COLUMNS = {  # solvation document field -> export column (kJ/mol per formula unit)
    "delta_g_solv_kJ_mol": "dG_solv_kJ_mol",
    "delta_g_solv_err_kJ_mol": "dG_solv_err_kJ_mol",
    "delta_g_solv_with_lr_kJ_mol": "dG_solv_with_lr_kJ_mol",
    "experimental_kJ_mol": "exp_dG_solv_kJ_mol",
}


def solvation_columns(solvation: dict[str, Any] | None) -> dict[str, Any]:
    """TI solvation free energy of the salt at this temperature and model (same for every molality)."""
    out: dict[str, Any] = {column: as_float((solvation or {}).get(key)) for key, column in SOLVATION_COLUMNS.items()}
    out["solvation_status"] = as_str((solvation or {}).get("status"))
    return out
