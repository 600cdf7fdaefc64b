"""Load test of the read-only API on the embedded (SQLite) database.

Fills a temporary embedded database with ``--n`` synthetic electrolyte summaries (schema-checked template,
bulk-inserted in batches), starts uvicorn in a subprocess on 127.0.0.1 (free port), then

1. profiles one filtered, paginated query in-process (where the time goes),
2. measures sequential latency (one client, ``--sequential`` requests),
3. drives the server with ``--clients`` concurrent clients (threads, one ``httpx.Client`` each) for
   ``--seconds`` seconds; requests still in flight at the end are awaited (bounded by ``--timeout``),

and prints p50/p99 latency and requests/s for
``GET /electrolytes?salt=NaCl&molality_min=1&molality_max=3&_limit=100&_skip=k`` (k random) against the
target p99 < 50 ms.

``--paging app`` (default) serves the app as it is; ``--paging store`` serves it with the store doing count,
sort, skip and limit (``Database.embedded = False``, no lock: what the MongoDB backend gets), to measure what
the embedded store allows once the API stops paging in Python.

Usage::

    .venv/bin/python benchmarks/api_load.py --n 10000 --seconds 20 --clients 16 [--paging store]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from electrodb.builders.documents import SUMMARY_PROPERTIES, ElectrolyteSummary, Provenance
from electrodb.settings import ElectroDBSettings
from electrodb.stores import get_stores

TARGET_P99_MS = 50.0
QUERY = {"salt": "NaCl", "molality_min": 1.0, "molality_max": 3.0, "_limit": 100}
SALTS = [
    ("NaCl", "Na+", "Cl-"),
    ("LiCl", "Li+", "Cl-"),
    ("KCl", "K+", "Cl-"),
    ("NaBr", "Na+", "Br-"),
    ("CsI", "Cs+", "I-"),
]


def synthetic_docs(n: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """``n`` summary documents numbered from ``start``: a pydantic-validated template, varied composition."""
    rng = np.random.default_rng(seed)
    prov = Provenance(trajectory_ids=["t"], model_id="name:mace-mp-0:small@mace-torch==0.3.10", builder="bench")
    template = ElectrolyteSummary(
        electrolyte_id="x",
        salt="NaCl",
        cation="Na+",
        anion="Cl-",
        nu_cation=1,
        nu_anion=1,
        cation_charge=1,
        anion_charge=-1,
        cation_radius_A=1.02,
        anion_radius_A=1.81,
        molality=1.0,
        temperature=298.15,
        model_id=prov.model_id,
        campaign_ids=["bench"],
        trajectory_ids=["t"],
        n_runs=2,
        total_ps=2000.0,
        n_atoms=1500,
        provenance=prov,
    ).model_dump()
    molality = np.round(rng.uniform(0.1, 6.0, n), 3)
    temperature = rng.choice([278.15, 298.15, 318.15, 338.15], n)
    values = rng.uniform(0.5, 2.5, size=(n, len(SUMMARY_PROPERTIES)))
    docs = []
    for i in range(start, start + n):
        salt, cation, anion = SALTS[i % len(SALTS)]
        doc = {
            **template,
            "electrolyte_id": f"bench-{i:07d}",
            "salt": salt,
            "cation": cation,
            "anion": anion,
            "molality": float(molality[i - start]),
            "temperature": float(temperature[i - start]),
            "trajectory_ids": [f"bench-{i:07d}-a", f"bench-{i:07d}-b"],
        }
        for j, prop in enumerate(SUMMARY_PROPERTIES):
            doc[prop] = float(values[i - start, j])
            doc[f"{prop}_err"] = float(values[i - start, j] * 0.03)
        docs.append(doc)
    return docs


def fill(settings: ElectroDBSettings, n: int, batch: int = 5000) -> float:
    """Bulk-insert ``n`` documents (``insert_many`` in batches); return seconds taken."""
    t0 = time.perf_counter()
    with get_stores(settings) as stores:
        coll = stores.electrolytes._collection
        for start in range(0, n, batch):
            coll.insert_many(synthetic_docs(min(batch, n - start), seed=start, start=start))
        stored = stores.electrolytes.count()
    if stored != n:
        raise RuntimeError(f"{stored} summaries stored, {n} inserted (duplicate electrolyte_id?)")
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_paging_app() -> Any:
    """The API with paging in the store (as for MongoDB) and no lock: the SQLite store is thread-safe."""
    from electrodb.api.app import create_app

    app = create_app()
    app.state.db.embedded = False
    app.state.db.lock = contextlib.nullcontext()
    return app


def start_server(
    settings: ElectroDBSettings, port: int, workers: int = 1, paging: str = "app"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ELECTRODB_DATA_DIR": str(settings.data_dir), "ELECTRODB_DB_URI": ""}
    env.pop("ELECTRODB_CONFIG", None)
    factory = "electrodb.api.app:create_app" if paging == "app" else "api_load:store_paging_app"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--app-dir",
            str(Path(__file__).parent),
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited during start-up")
        try:
            if httpx.get(f"{url}/properties", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("uvicorn did not answer in time")


def profile_query(settings: ElectroDBSettings, total: int, n_docs: int, paging: str = "app") -> str:
    """cProfile of one ``Database.page`` call of the benchmark query, in-process (top functions by own time)."""
    from electrodb.api import queries as q
    from electrodb.api.app import Database

    db = Database(settings)
    if paging == "store":
        db.embedded = False
    spec = q.SPECS["electrolytes"]
    criteria = q.build_criteria(spec, {k: v for k, v in QUERY.items() if not k.startswith("_")})
    sort = q.parse_sort(spec, None)
    db.page("electrolytes", criteria, None, sort, 0, 1)  # connect, warm caches
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    docs, n = db.page("electrolytes", criteria, None, sort, max(0, total // 2), 100)
    prof.disable()
    elapsed = time.perf_counter() - t0
    db.close()
    stats = pstats.Stats(prof)
    groups = {"sqlite (C)": 0.0, "JSON decode": 0.0, "store (Python)": 0.0, "other": 0.0}
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "sqlite3" in func:
            groups["sqlite (C)"] += tottime
        elif "json" in filename or "sqlite_query" in filename:
            groups["JSON decode"] += tottime
        elif "sqlite_store" in filename or "mongomock" in filename:
            groups["store (Python)"] += tottime
        else:
            groups["other"] += tottime
    total_t = sum(groups.values()) or 1.0
    split = ", ".join(f"{k} {100 * v / total_t:.0f} %" for k, v in groups.items())
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(6)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()][-7:]
    return (
        f"one query in-process (under cProfile, paging in the {paging}): {elapsed * 1e3:.0f} ms for {n} matches, "
        f"{len(docs)} returned; {n_docs} documents stored\n  own-time split: {split}\n" + "\n".join(lines)
    )


def run_store_threads(settings: ElectroDBSettings, clients: int, seconds: float, total: int) -> dict[str, Any]:
    """The store alone under load: ``clients`` threads call ``Database.page`` (paging in the store, no lock,
    no HTTP, no JSON response) with random skips for ``seconds``."""
    from electrodb.api import queries as q
    from electrodb.api.app import Database

    db = Database(settings)
    db.embedded = False
    db.lock = contextlib.nullcontext()
    spec = q.SPECS["electrolytes"]
    criteria = q.build_criteria(spec, {k: v for k, v in QUERY.items() if not k.startswith("_")})
    sort = q.parse_sort(spec, None)
    db.page("electrolytes", criteria, None, sort, 0, 1)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            db.page("electrolytes", criteria, None, sort, rng.randrange(0, max(1, total - 100)), 100)
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    db.close()
    return {"latencies": latencies, "wall": wall}


def percentiles(latencies: list[float]) -> tuple[float, float]:
    arr = np.asarray(latencies) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def run_clients(url: str, clients: int, seconds: float, timeout: float, total: int) -> dict[str, Any]:
    """``clients`` threads send the query with random skips until ``seconds`` pass; in-flight ones finish."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=timeout) as client:
            while time.monotonic() < stop_at:
                params = {**QUERY, "_skip": rng.randrange(0, max(1, total - 100))}
                t0 = time.perf_counter()
                try:
                    r = client.get("/electrolytes", params=params)
                    ok = r.status_code == 200
                    err = "" if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, err = False, type(exc).__name__
                dt = time.perf_counter() - t0
                with lock:
                    (latencies.append(dt) if ok else errors.append(err))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + timeout + 30)
    wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="summary documents (default 1e5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the concurrent phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=3, help="requests of the sequential phase")
    parser.add_argument("--timeout", type=float, default=600.0, help="per-request timeout (s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--paging", choices=["app", "store"], default="app", help="page in the API (as now) or in the store"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="electrodb-bench-") as tmp:
        settings = ElectroDBSettings(data_dir=Path(tmp))
        print(f"filling embedded database with {args.n} summaries …", flush=True)
        print(f"  bulk insert: {fill(settings, args.n):.1f} s")
        with get_stores(settings, read_only=True) as stores:
            t0 = time.perf_counter()
            total = stores.electrolytes.count({"salt": "NaCl", "molality": {"$gte": 1.0, "$lte": 3.0}})
            print(f"  matches of the benchmark filter: {total} (count took {time.perf_counter() - t0:.2f} s)")
        print(profile_query(settings, total, args.n, args.paging), flush=True)
        store = run_store_threads(settings, args.clients, min(args.seconds, 10.0), total)
        p50, p99 = percentiles(store["latencies"])
        print(
            f"store alone ({args.clients} threads, count + sorted page of 100, no HTTP): p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, {len(store['latencies']) / store['wall']:.0f} pages/s",
            flush=True,
        )

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(settings, port, args.workers, args.paging)
        try:
            wait_ready(url, proc)
            with httpx.Client(base_url=url, timeout=args.timeout) as client:
                seq = []
                for k in range(args.sequential):
                    t0 = time.perf_counter()
                    r = client.get("/electrolytes", params={**QUERY, "_skip": (k * 997) % max(1, total - 100)})
                    seq.append(time.perf_counter() - t0)
                    assert r.status_code == 200 and r.json()["meta"]["total"] == total, r.text[:300]
            p50, p99 = percentiles(seq)
            print(
                f"sequential (1 client, {len(seq)} requests): p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
                f"{len(seq) / sum(seq):.2f} req/s"
            )
            print(
                f"concurrent: {args.clients} clients for {args.seconds:.0f} s, {args.workers} uvicorn worker(s) …",
                flush=True,
            )
            res = run_clients(url, args.clients, args.seconds, args.timeout, total)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        lat = res["latencies"]
        print(
            f"  completed {len(lat)} requests, {len(res['errors'])} errors {sorted(set(res['errors']))} "
            f"in {res['wall']:.1f} s (in-flight requests awaited)"
        )
        if lat:
            p50, p99 = percentiles(lat)
            print(f"  p50 {p50:.0f} ms, p99 {p99:.0f} ms, throughput {len(lat) / res['wall']:.2f} req/s")
            verdict = "meets" if p99 < TARGET_P99_MS else f"misses by ×{p99 / TARGET_P99_MS:.0f}"
            print(
                f"  target p99 < {TARGET_P99_MS:.0f} ms: {verdict} "
                f"(N = {args.n}, embedded SQLite, paging in the {args.paging})"
            )


if __name__ == "__main__":
    main()
