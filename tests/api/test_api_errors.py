"""A refused parameter gets one readable line: the parameter, the bad value and the close matches, never a regex.

Issue 22, row 14: a misspelt field in ``_fields`` was answered with a 422 whose message was ~500 characters of
the parameter's pattern.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def app(db: dict[str, Any]) -> Any:
    from electrodb.api.app import create_app

    return create_app(db["settings"])


@pytest.fixture(scope="module")
def client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _error(client: Any, url: str) -> dict[str, Any]:
    r = client.get(url)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    message = err["message"]
    assert "\n" not in message and len(message) < 200, message
    assert "(?:" not in message and "^" not in message and "should match pattern" not in message, message
    return err


@pytest.mark.parametrize(
    ("url", "parameter", "words"),
    [
        ("/electrolytes?_fields=salt,molalty", "_fields", ["unknown field 'molalty'", "did you mean 'molality'"]),
        ("/electrolytes?_fields=D_catoin_err", "_fields", ["'D_catoin_err'", "'D_cation_err'"]),
        ("/structure?_fields=rdff", "_fields", ["unknown field 'rdff'", "'rdf'"]),
        ("/trajectories?_fields=n_atom", "_fields", ["'n_atom'", "'n_atoms'"]),
        ("/electrolytes?_sort_fields=-D_catoin", "_sort_fields", ["unknown sort field 'D_catoin'", "'D_cation'"]),
        ("/electrolytes?_sort=molalty", "_sort", ["'molalty'", "'molality'"]),
        ("/electrolytes?D_cation_status=convergd", "D_cation_status", ["unknown status 'convergd'", "'converged'"]),
        ("/trajectories?status=runing", "status", ["unknown status 'runing'", "'running'"]),
        ("/electrolytes?salts=NaCl", "salts", ["unknown query parameter 'salts'", "did you mean 'salt'"]),
        ("/electrolytes?_field=salt", "_field", ["'_field'", "'_fields'"]),
    ],
)
def test_misspelt_names_and_values_get_close_matches(client: Any, url: str, parameter: str, words: list[str]) -> None:
    err = _error(client, url)
    assert err["detail"]["parameter"] == parameter
    assert parameter in err["message"]
    for word in words:
        assert word in err["message"], err["message"]


def test_the_message_of_the_issue(client: Any) -> None:
    err = _error(client, "/electrolytes?_fields=salt,molalty")
    assert err["message"] == "invalid request parameter _fields: unknown field 'molalty'; did you mean 'molality'?"
    (one,) = err["detail"]["errors"]
    assert one["loc"] == ["query", "_fields"] and one["value"] == "salt,molalty"
    assert one["unknown"] == ["molalty"] and one["suggestions"] == {"molalty": ["molality"]}
    assert "molality" in one["allowed"] and "(?:" not in one["msg"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/electrolytes?_fields=salt,,molality", ["empty item"]),
        ("/electrolytes?_fields=provenance..model_id", ["bad sub-path 'provenance..model_id'"]),
        ("/electrolytes?_sort_fields=salt,molality,temperature,model_id", ["_sort_fields: takes at most 3 items"]),
        ("/electrolytes?D_cation_status=converged,maybe", ["unknown status 'maybe'", "one of converged"]),
        ("/electrolytes?_fields=zzzzzz", ["unknown field 'zzzzzz'", "see detail.allowed"]),
        ("/electrolytes?salt=" + "N" * 45, ["salt: 'NNNN", "not a valid salt formula"]),
        ("/thermo?_fields=9bad", ["_fields: '9bad' is not a valid field name"]),
        ("/electrolytes/x/msd?species=cat1on", ["species: 'cat1on' is not a valid species name"]),
        ("/electrolytes?_limit=abc", ["_limit='abc'", "valid integer"]),
        ("/electrolytes?nonsense=1", ["unknown query parameter 'nonsense'", "see detail.allowed"]),
        ("/models?nonsense=1", ["unknown query parameter 'nonsense'", "this route takes _all_fields"]),
    ],
)
def test_other_refusals_are_one_readable_line(client: Any, url: str, words: list[str]) -> None:
    message = _error(client, url)["message"]
    for word in words:
        assert word in message, message


def test_several_bad_parameters_are_all_named(client: Any) -> None:
    err = _error(client, "/electrolytes?_limit=abc&_fields=molalty")
    assert err["message"].startswith("invalid request parameters: ")
    assert "_limit='abc'" in err["message"] and "'molality'" in err["message"]
    assert [e["loc"][-1] for e in err["detail"]["errors"]] == ["_limit", "_fields"]


def test_fast_and_declared_parameter_handling_give_the_same_message(app: Any, client: Any) -> None:
    from electrodb.api.params import declared_dependencies, fast_dependencies

    urls = ["/electrolytes?_fields=salt,molalty", "/trajectories?status=runing", "/electrolytes?_sort_fields=x"]
    fast = [client.get(u).json() for u in urls]
    declared_dependencies(app)
    try:
        assert [client.get(u).json() for u in urls] == fast
    finally:
        fast_dependencies(app)


def test_suggest_is_case_insensitive_and_bounded() -> None:
    from electrodb.api.errors import suggest

    assert suggest("d_cation", ["D_cation", "D_anion", "salt"])[0] == "D_cation"
    assert suggest("qqqq", ["D_cation", "salt"]) == []
    assert len(suggest("D_cation_e", [f"D_cation_{s}" for s in ("err", "eff", "ex", "e1", "e2")])) == 3
