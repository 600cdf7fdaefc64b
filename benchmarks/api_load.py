"""Load test of the read-only API: ``GET /electrolytes`` with filters and pagination under concurrent clients.

For each ``--n`` (default 10³, 10⁴ and 10⁵ summaries) it fills a fresh database (the embedded SQLite default in a
temporary folder, or MongoDB with ``--uri``, in a database of its own that is dropped afterwards) with synthetic
summaries (a schema-checked template, bulk-inserted), then

1. splits one request in-process: the store's count + sorted page, the JSON rendering, gzip (median ms),
2. runs the store alone under ``--clients`` threads (no HTTP, no JSON),
3. starts one uvicorn server per *mode* (``cache``: the app as shipped, response cache on; ``nocache``: the
   same app with the cache off, so every request reads the store and renders; ``peer``: the package found in
   ``--peer-src``, e.g. a checkout of an earlier commit) and drives them in interleaved rounds of
   ``--seconds`` seconds each with ``--clients`` concurrent clients of each ``--client`` kind, gzip accepted:
   ``light`` (a thread per client holding one raw HTTP/1.1 keep-alive connection, as ``wrk``/``hey`` do; every
   answer's status and length checked, one in ``CHECK_EVERY`` decoded and its ``total_doc`` checked) and
   ``httpx`` (an ``httpx.Client`` per thread, every answer decoded: what a Python script sees), so that load
   from other processes on the machine falls on every mode alike,

and prints p50/p99 latency and requests/s per mode and client against the target p99 < 50 ms, with the CPU
milliseconds per request of the server and of the client (clients share the machine's cores with the server:
an httpx client costs ~3 ms of CPU per answer, several times the server's, and on a 2-core machine its 16
threads measure mostly themselves), and the ratio to the ``nocache`` mode measured in the same run. The query is
``salt=NaCl&molality_min=1&molality_max=3&_limit=100&_skip=k`` with ``k`` drawn at random over the matches
(≈ 7 % of the summaries match), so the cache sees ``matches - 100`` distinct pages.

Usage::

    .venv/bin/python benchmarks/api_load.py --n 1000,10000,100000 --seconds 10 --rounds 2 --clients 16
    .venv/bin/python benchmarks/api_load.py --uri mongodb://localhost:27017 --n 10000
    .venv/bin/python benchmarks/api_load.py --n 10000 --peer-src /tmp/old-checkout   # before/after
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np

from electrodb.documents.properties import ElectrolyteSummary, Provenance
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores

TARGET_P99_MS = 50.0
QUERY = {"salt": "NaCl", "molality_min": 1.0, "molality_max": 3.0, "_limit": 100}
CRITERIA = {"salt": "NaCl", "molality": {"$gte": 1.0, "$lte": 3.0}}
SALTS = [
    ("NaCl", "Na+", "Cl-"),
    ("LiCl", "Li+", "Cl-"),
    ("KCl", "K+", "Cl-"),
    ("NaBr", "Na+", "Br-"),
    ("CsI", "Cs+", "I-"),
]
MODES = ("cache", "nocache", "peer")
CLIENTS = ("light", "httpx")
#: One answer in this many is decompressed and its ``total_doc`` checked by a light client (all are by httpx).
CHECK_EVERY = 20


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


def bench_settings(tmp: Path, uri: str | None) -> ElectroDBSettings:
    """Settings of a fresh benchmark database: embedded in ``tmp``, or a new database on the MongoDB ``uri``."""
    if uri is None:
        return ElectroDBSettings(data_dir=tmp)
    return ElectroDBSettings(data_dir=tmp, db_uri=uri, db_name=f"electrodb_bench_{uuid.uuid4().hex[:10]}")


def fill(settings: ElectroDBSettings, n: int, batch: int = 5000) -> float:
    """Bulk-insert ``n`` documents (in batches) with the collection's indexes; return seconds taken."""
    t0 = time.perf_counter()
    with get_stores(settings) as stores:  # a writable open makes the indexes (both backends)
        coll = stores.electrolytes._collection
        for start in range(0, n, batch):
            coll.insert_many(synthetic_docs(min(batch, n - start), seed=start, start=start))
        stored = stores.electrolytes.count()
    if stored != n:
        raise RuntimeError(f"{stored} summaries stored, {n} inserted (not an empty database, or duplicate ids)")
    return time.perf_counter() - t0


def drop(settings: ElectroDBSettings) -> None:
    """Drop the benchmark's MongoDB database (nothing to do for the embedded one: its folder is removed)."""
    if settings.embedded:
        return
    with get_stores(settings) as stores:
        stores.electrolytes._collection.database.client.drop_database(settings.db_name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(settings: ElectroDBSettings, mode: str, peer_src: Path | None = None) -> dict[str, str]:
    """Environment of a server process of ``mode`` over the database of ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTRODB_")}
    env.update(ELECTRODB_DATA_DIR=str(settings.data_dir), ELECTRODB_DB_NAME=settings.db_name)
    if settings.db_uri:
        env["ELECTRODB_DB_URI"] = settings.db_uri
    if mode == "nocache":
        env["ELECTRODB_API_CACHE_MB"] = "0"
    if mode == "peer":
        if peer_src is None:
            raise ValueError("mode 'peer' needs --peer-src")
        env["PYTHONPATH"] = os.pathsep.join([str(peer_src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_server(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "electrodb.api.app:create_app", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL)


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a server started by :func:`start_server` (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited during start-up (code {proc.returncode})")
        try:
            if httpx.get(f"{url}/properties", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("uvicorn did not answer in time")


def split_request(settings: ElectroDBSettings, total: int, repeats: int = 15) -> str:
    """Median ms of the parts of one request, in-process: the store's count + page of documents, their JSON
    rendering, gzip level 1 (ISA-L where installed, as the server does) and the read model's page (row ids +
    count, rendered documents from its cache)."""
    from electrodb.api.compress import BACKEND, gzip_module
    from electrodb.api.database import Database
    from electrodb.api.jsonout import SafeJSONResponse
    from electrodb.store import query as q

    db = Database(settings, doc_cache_bytes=256 * 2**20)
    spec = q.SPECS["electrolytes"]
    criteria = q.build_criteria(spec, {k: v for k, v in QUERY.items() if not k.startswith("_")})
    sort, props = q.parse_sort(spec, None), q.projection(spec, None)
    rng = random.Random(1)
    skips = [rng.randrange(0, max(1, total - 100)) for _ in range(repeats)]
    parts: dict[str, list[float]] = {"store": [], "render": [], f"gzip ({BACKEND})": [], "read model (warm)": []}
    compress = gzip_module().compress
    size = 0
    for skip in skips:
        db.page_json("electrolytes", criteria, props, sort, skip, 100)  # warms the rendered documents
        t0 = time.perf_counter()
        docs, n = db.page("electrolytes", criteria, props, sort, skip, 100)
        t1 = time.perf_counter()
        body = SafeJSONResponse({"data": docs, "meta": {"total_doc": n}}).body
        t2 = time.perf_counter()
        compress(body, 1, 31)
        t3 = time.perf_counter()
        db.page_json("electrolytes", criteria, props, sort, skip, 100)
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key].append(dt * 1e3)
        size = len(body)
    db.close()
    text = ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in parts.items())
    return f"one request in-process (median of {repeats}): {text}; answer {size / 1e3:.0f} kB"


def run_store_threads(settings: ElectroDBSettings, clients: int, seconds: float, total: int) -> dict[str, Any]:
    """The store alone under load: ``clients`` threads call ``Database.page`` with random skips for ``seconds``
    (no HTTP, no JSON rendering)."""
    from electrodb.api.database import Database
    from electrodb.store import query as q

    db = Database(settings)
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
    return {"latencies": latencies, "wall": wall, "errors": []}


def percentiles(latencies: list[float]) -> tuple[float, float]:
    arr = np.asarray(latencies) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def run_clients(
    url: str, clients: int, seconds: float, timeout: float, total: int, seed: int = 0, kind: str = "light"
) -> dict[str, Any]:
    """``clients`` concurrent clients send the query with random skips until ``seconds`` pass; in-flight ones finish.

    ``kind="light"``: each client is a thread holding one raw HTTP/1.1 keep-alive connection (as ``wrk`` or
    ``hey`` do): every answer's status and length are checked, and one in ``CHECK_EVERY`` is decompressed and its
    ``total_doc`` checked. ``kind="httpx"``: one ``httpx.Client`` per thread, every answer decoded by httpx, as a
    Python user's script would. The result carries the client's own CPU seconds (``client_cpu``), so that a
    client that costs the shared cores more than the server does is seen as such.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    host, port = url.removeprefix("http://").split(":")

    def record(dt: float, err: str) -> None:
        with lock:
            (errors.append(err) if err else latencies.append(dt))

    def httpx_worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        with httpx.Client(base_url=url, timeout=timeout, headers={"Accept-Encoding": "gzip"}) as client:
            while time.monotonic() < stop_at:
                params = {**QUERY, "_skip": rng.randrange(0, max(1, total - 100))}
                t0 = time.perf_counter()
                try:
                    r = client.get("/electrolytes", params=params)
                    err = "" if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    err = type(exc).__name__
                record(time.perf_counter() - t0, err)

    def light_worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        try:
            conn = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError as exc:
            record(0.0, type(exc).__name__)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb", buffering=2**16)
        i = 0
        try:
            while time.monotonic() < stop_at:
                query = urlencode({**QUERY, "_skip": rng.randrange(0, max(1, total - 100))})
                request = f"GET /electrolytes?{query} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n\r\n"
                t0 = time.perf_counter()
                conn.sendall(request.encode())
                status, headers, body = read_answer(reader)
                dt = time.perf_counter() - t0
                err = "" if status == 200 else f"HTTP {status}"
                if not err and i % CHECK_EVERY == 0:
                    raw = zlib.decompress(body, 31) if headers.get("content-encoding") == "gzip" else body
                    if json.loads(raw)["meta"]["total_doc"] != total:
                        err = "wrong total_doc"
                i += 1
                record(dt, err)
        except (OSError, ValueError) as exc:
            record(0.0, type(exc).__name__)
        finally:
            reader.close()
            conn.close()

    worker = {"light": light_worker, "httpx": httpx_worker}[kind]
    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + timeout + 30)
    wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "wall": wall, "client_cpu": time.process_time() - cpu0}


def read_answer(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 answer from a buffered socket reader: status, lower-cased headers and the whole body
    (``Content-Length`` or chunked); ``ValueError`` if the connection closes or the answer is malformed."""
    line = reader.readline()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP answer: {line[:80]!r}")
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
        if len(body) != int(headers["content-length"]):
            raise ValueError("connection closed inside an answer")
    elif headers.get("transfer-encoding") == "chunked":
        pieces = []
        while size := int(reader.readline().split(b";")[0], 16):
            pieces.append(reader.read(size))
            reader.readline()
        reader.readline()
        body = b"".join(pieces)
    else:
        raise ValueError("answer has neither Content-Length nor chunked encoding")
    return int(parts[1]), headers, body


class CpuMeter:
    """CPU seconds (user + system) used by a server process and its children (uvicorn workers), via psutil."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)

    def seconds(self) -> float:
        import psutil

        total = 0.0
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


def summary_line(label: str, res: dict[str, Any]) -> str:
    """One line of results: p50 / p99, throughput, and (for HTTP runs) CPU ms per request of server and client."""
    lat = res["latencies"]
    if not lat:
        return f"  {label:14s} no successful request; errors {sorted(set(res['errors']))}"
    p50, p99 = percentiles(lat)
    verdict = "meets" if p99 < TARGET_P99_MS else f"misses ×{p99 / TARGET_P99_MS:.1f}"
    errors = f", {len(res['errors'])} errors {sorted(set(res['errors']))}" if res["errors"] else ""
    line = f"  {label:14s} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {len(lat) / res['wall']:6.0f} req/s  p99 {verdict}"
    if "server_cpu" in res:
        cpu = 1e3 / len(lat)
        line += f"  (CPU ms/req: server {res['server_cpu'] * cpu:.2f}, client {res['client_cpu'] * cpu:.2f})"
    return line + f"  [{len(lat)} requests{errors}]"


def drive(servers: dict[str, tuple[str, Any]], total: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Interleaved rounds: every (client kind, server mode) pair runs ``args.seconds`` per round, the order reversed
    every other round; results pooled per ``"mode/kind"`` with the server's and client's CPU seconds."""
    pairs = [(mode, kind) for kind in args.client for mode in servers]
    pooled = {
        f"{m}/{k}": {"latencies": [], "errors": [], "wall": 0.0, "server_cpu": 0.0, "client_cpu": 0.0} for m, k in pairs
    }
    meters = {mode: CpuMeter(proc.pid) for mode, (_, proc) in servers.items()}
    for rnd in range(args.rounds):
        for mode, kind in pairs if rnd % 2 == 0 else reversed(pairs):
            cpu0 = meters[mode].seconds()
            res = run_clients(servers[mode][0], args.clients, args.seconds, args.timeout, total, rnd, kind)
            acc = pooled[f"{mode}/{kind}"]
            acc["server_cpu"] += meters[mode].seconds() - cpu0
            for key in ("latencies", "errors"):
                acc[key] += res[key]
            for key in ("wall", "client_cpu"):
                acc[key] += res[key]
    return pooled


def bench_one(n: int, args: argparse.Namespace) -> None:
    backend = "MongoDB" if args.uri else "embedded SQLite"
    with tempfile.TemporaryDirectory(prefix="electrodb-bench-") as tmp:
        settings = bench_settings(Path(tmp), args.uri)
        try:
            print(f"\n=== N = {n} summaries, {backend} ===", flush=True)
            print(f"  bulk insert: {fill(settings, n):.1f} s")
            with get_stores(settings, read_only=True) as stores:
                total = stores.electrolytes.count(CRITERIA)
            print(f"  matches of the filter: {total} ({max(1, total - 100)} distinct pages of 100)")
            print("  " + split_request(settings, total), flush=True)
            store = run_store_threads(settings, args.clients, min(args.seconds, 5.0), total)
            print(summary_line("store", store).replace("req/s", "pg/s ") + " [no HTTP]", flush=True)
            servers = {}
            try:
                for mode in args.modes:
                    port = free_port()
                    proc = start_server(server_env(settings, mode, args.peer_src), port, args.workers)
                    servers[mode] = (f"http://127.0.0.1:{port}", proc)
                for url, proc in servers.values():
                    wait_ready(url, proc)
                    r = httpx.get(f"{url}/electrolytes", params=QUERY, timeout=args.timeout)
                    assert r.status_code == 200 and r.json()["meta"]["total_doc"] == total, r.text[:300]
                pooled = drive(servers, total, args)
            finally:
                for _, proc in servers.values():
                    stop_server(proc)
            print(
                f"  concurrent: {args.clients} clients, {args.rounds} interleaved rounds × {args.seconds:.0f} s per "
                f"mode and client, {args.workers} uvicorn worker(s), clients on the same cores as the server:"
            )
            for label, res in pooled.items():
                print(summary_line(label, res))
            for label, res in pooled.items():
                mode, kind = label.split("/")
                base = pooled.get(f"nocache/{kind}")
                if mode == "nocache" or not (base and base["latencies"] and res["latencies"]):
                    continue
                (b50, b99), (p50, p99) = percentiles(base["latencies"]), percentiles(res["latencies"])
                rate = (len(res["latencies"]) / res["wall"]) / (len(base["latencies"]) / base["wall"])
                print(f"  {label} / nocache/{kind}: p50 ×{p50 / b50:.2f}, p99 ×{p99 / b99:.2f}, req/s ×{rate:.2f}")
        finally:
            drop(settings)


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(float(t)) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n {text!r}: give counts like 1000,10000,100000") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--n {text!r}: counts must be ≥ 1")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=parse_counts, default=[1000, 10_000, 100_000], help="summary counts, a,b,c")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrent phase (s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per mode")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600.0, help="per-request timeout (s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes per server")
    parser.add_argument("--uri", default=None, help="MongoDB URI (mongodb://…): benchmark MongoDB instead")
    parser.add_argument(
        "--modes", default="cache,nocache", help=f"comma-separated servers to compare: {', '.join(MODES)}"
    )
    parser.add_argument(
        "--client",
        default="light,httpx",
        help="comma-separated client kinds: light (raw HTTP/1.1 keep-alive, like wrk), httpx (a Python script's)",
    )
    parser.add_argument("--peer-src", type=Path, default=None, help="folder holding another electrodb package")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = sorted(set(args.modes) - set(MODES))
    if bad or not args.modes:
        parser.error(f"--modes {','.join(bad) or '(none)'}: choose from {', '.join(MODES)}")
    args.client = [c.strip() for c in args.client.split(",") if c.strip()]
    bad = sorted(set(args.client) - set(CLIENTS))
    if bad or not args.client:
        parser.error(f"--client {','.join(bad) or '(none)'}: choose from {', '.join(CLIENTS)}")
    if args.peer_src is not None and "peer" not in args.modes:
        args.modes.append("peer")
    if "peer" in args.modes and (args.peer_src is None or not (args.peer_src / "electrodb").is_dir()):
        parser.error("--peer-src must be a folder containing an electrodb package (e.g. a checkout)")
    if args.uri is not None and not args.uri.startswith(("mongodb://", "mongodb+srv://")):
        parser.error(f"--uri {args.uri!r} is not a MongoDB URI; give mongodb://host:port")
    if args.rounds < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--rounds and --clients must be ≥ 1 and --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for n in args.n:
        bench_one(n, args)


if __name__ == "__main__":
    main()
