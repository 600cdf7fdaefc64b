"""The summary's contract for ``insufficient``: no value, no error, no n_eff, whatever was stored."""

from __future__ import annotations

from electrodb.documents.properties import WITHHELD_SUFFIXES, withhold_insufficient


def test_insufficient_properties_lose_their_numbers_and_nothing_else() -> None:
    doc = {
        "electrolyte_id": "e",
        "cn_cation_O": 3.648,
        "cn_cation_O_err": 0.1,
        "cn_cation_O_n_eff": 2.0,
        "cn_cation_O_t_equil_ps": 1.0,
        "cn_cation_O_status": "insufficient",
        "cn_cation_O_reason": "1.4 centre-ps < 20",
        "eta": 0.97,
        "eta_err": 0.03,
        "eta_status": "input",
        "D_cation": 1.2,
        "D_cation_status": "unconverged",
    }
    out = withhold_insufficient(dict(doc))
    assert [out[f"cn_cation_O{s}"] for s in ("", *WITHHELD_SUFFIXES)] == [None] * 4
    assert out["cn_cation_O_reason"] == doc["cn_cation_O_reason"]  # why it is insufficient stays
    assert {k: out[k] for k in ("eta", "eta_err", "D_cation")} == {"eta": 0.97, "eta_err": 0.03, "D_cation": 1.2}
    partial = withhold_insufficient({"cn_cation_O_status": "insufficient"})
    assert partial == {"cn_cation_O_status": "insufficient"}  # fields a projection left out stay out
