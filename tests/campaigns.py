"""Short MD settings and small campaigns for tests that run real MD with the tiny random MACE.

:data:`TEST_STABILITY` relaxes the distance checks for the random model, :func:`short_md` is a run of a few hundred
0.5-fs steps, :func:`small_campaign` one NaCl box of 64 waters and :func:`worker_campaign` NaCl boxes of 32 waters
over given concentrations and temperatures. :func:`assert_no_duplicates` checks a database after such runs.
"""

from __future__ import annotations

from typing import Any

from electrodb.systems.campaign import Campaign, MDSettings, StabilitySettings

# The random test model has no chemistry: no bonds, and MACE's ZBL term only acts below the sum of covalent radii
# (0.62 Å for H–H), so hydrogens may approach ~0.3 Å without anything being wrong with the machinery. The
# distance thresholds are therefore lowered for these tests; force, temperature and NaN checks stay as in production.
TEST_STABILITY = StabilitySettings(min_distance_h_A=0.1, min_distance_heavy_A=0.5)


def short_md(**kw: Any) -> MDSettings:
    """MD settings for tests: 5 minimisation steps, 5 fs NVT warm-up, no NPT, 0.1 ps production sampled every
    10 steps, checkpoints every 50, :data:`TEST_STABILITY` and no NVE drift check; ``kw`` overrides any of them."""
    base = dict(
        minimize_steps=5,
        nvt_warmup_ps=0.005,
        npt=False,
        production_ps=0.1,
        sample_every_steps=10,
        checkpoint_every_steps=50,
        stability=TEST_STABILITY,
        nve_drift_steps=0,  # the once-per-model NVE check is exercised where a test asks for it
    )
    return MDSettings(**{**base, **kw})


def small_campaign(model: Any, **md: Any) -> Campaign:
    """One system: NaCl at 1 mol/L in 64 waters with ``model`` (cutoff 4 Å), MD :func:`short_md` (``**md``)."""
    return Campaign(
        name="t",
        salts=["NaCl"],
        concentrations=[1.0],
        size={"n_waters": 64},
        model=str(model),
        model_cutoff_A=4.0,
        md=short_md(**md),
    )


def worker_campaign(model: str, concentrations: list[float], temperatures: list[float], **md: Any) -> Campaign:
    """NaCl in 32 waters at each concentration and temperature (the workers' tests), MD :func:`short_md` with a
    checkpoint every 20 steps unless ``md`` says otherwise."""
    return Campaign(
        name="w",
        salts=["NaCl"],
        concentrations=concentrations,
        temperatures=temperatures,
        size={"n_waters": 32},
        model=model,
        model_cutoff_A=4.0,
        md=short_md(**{"checkpoint_every_steps": 20, **md}),
    )


def assert_no_duplicates(stores: Any) -> None:
    """Every collection holds each key once (the SQLite upsert is atomic across processes)."""
    from electrodb.store.stores import BLOB_COLLECTION, BLOB_KEY, COLLECTIONS, JOBFLOW_UPSERT_KEY

    keys = {**COLLECTIONS, BLOB_COLLECTION: BLOB_KEY, "jobs": JOBFLOW_UPSERT_KEY}
    for name, key in keys.items():
        fields = key if isinstance(key, list) else [key]
        values = [tuple(str(d.get(f)) for f in fields) for d in stores[name].query(properties=fields)]
        assert len(values) == len(set(values)), f"duplicate {fields} in {name}"


#: ``until`` and ``budget`` of a campaign whose production runs in exactly three segments with frames every 1 fs
#: (``sample_every_steps=2`` at 0.5 fs), whatever the model: after 0.005 ps (6 frames) and 0.01 ps (11 frames) the
#: run is shorter than the analysis' ``min_frames`` (20), so the check knows what is missing (the missing frames)
#: and continues, to 0.01 ps and then to the end of the budget, 0.02 ps (21 frames), where the real judgement stops
#: it whatever it finds (converged, unreachable or budget). For the engines' tests, whose workers are processes.
THREE_SEGMENTS: dict[str, Any] = {
    "until": ["r_cation_O"],
    "budget": {"segment_ps": 0.005, "max_production_ps": 0.02},
}
