"""Load test of ``retriever serve`` on 127.0.0.1 (issue 13): throughput and latency, idle and while writing.

For each number of concurrent clients (1, 8, 32) a fresh copy of the same index is served by
``retriever serve`` in its own process, then:

1. *idle*: the clients send a fixed number of searches (SciFact test queries, default hybrid
   mode, k=10), as fast as the server answers;
2. *writing*: the same searches while one more client adds 1,000 documents in batches
   (``POST /documents``), each batch sent when the previous one has answered.

Every search must answer 200 and every added document must be retrievable afterwards (``GET
/documents/{id}``, compared with what was sent): the script reports failed requests and lost
documents and exits non-zero if either is not zero. The in-process ``Retriever.search`` latency
over the same index is measured first, as the baseline of the HTTP figures. Requests are bounded
in number, each has a timeout, and every phase has a deadline; traffic goes to 127.0.0.1 only.

    python benchmarks/serve_load.py ../shared/datasets/scifact     # run it alone on the machine: it is timed

The base index (the corpus less the documents to add) is built once into benchmarks/cache/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
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

from retriever.eval.beir import load_beir
from retriever.eval.bench import environment
from retriever.eval.machine import provenance
from retriever.retriever import Retriever

HERE = Path(__file__).resolve().parent
API_KEY = "serve-load-benchmark"
REQUEST_TIMEOUT = 120.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="A BEIR folder, e.g. ../shared/datasets/scifact.")
    parser.add_argument("--clients", default="1,8,32", help="Concurrent search clients, comma-separated.")
    parser.add_argument("--requests", type=int, default=600, help="Searches per run.")
    parser.add_argument("--add", type=int, default=1000, help="Documents added during the writing run.")
    parser.add_argument("--batch", type=int, default=50, help="Documents per POST /documents.")
    parser.add_argument("--base", type=int, default=None, help="Documents in the served index (default: the rest).")
    parser.add_argument("--mode", default="hybrid", choices=["dense", "lexical", "hybrid"])
    parser.add_argument("--deadline", type=float, default=900.0, help="Seconds a run may take before it stops.")
    parser.add_argument("--idle-only", action="store_true", help="Skip the runs while documents are added.")
    parser.add_argument("--compare-unbatched", action="store_true",
                        help="Also run the idle searches on a server started with --no-batch-searches.")
    parser.add_argument("--server-args", default="",
                        help="More options for retriever serve, e.g. --server-args=--no-batch-searches.")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serve_load.json")
    return parser.parse_args()


# the corpus and the index -------------------------------------------------------------------------------
def split_corpus(dataset_dir: Path, add: int, base: int | None) -> tuple[list[dict], list[dict], list[str]]:
    """(base records, records to add, queries): the last ``add`` documents are held back to be added."""
    dataset = load_beir(dataset_dir)
    records = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in dataset.corpus.values()]
    held_back = records[-add:]
    served = records[:-add] if base is None else records[:min(base, len(records) - add)]
    return served, held_back, list(dataset.queries.values())


def base_index(records: list[dict]) -> Path:
    """The base index, built once and kept under benchmarks/cache/ (ignored by git)."""
    import hashlib

    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:12]
    target = HERE / "cache" / f"serve_load-{len(records)}-{digest}"
    if not (target / "CURRENT").exists():
        shutil.rmtree(target, ignore_errors=True)
        print(f"building the base index of {len(records)} documents into {target}", file=sys.stderr)
        Retriever.build(records, index_dir=target, progress=True).close()
    return target


def in_process_latency(index: Path, queries: list[str], mode: str) -> dict[str, float]:
    """Sequential warm ``Retriever.search`` over the same index: the baseline of the HTTP figures."""
    with Retriever.load(index) as retriever:
        for query in queries[:5]:
            retriever.search(query, k=10, mode=mode)
        times = []
        for query in queries[:300]:
            started = time.perf_counter()
            retriever.search(query, k=10, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
    return {"requests": len(times), **percentiles(times)}


# the server -------------------------------------------------------------------------------------------------
class Server:
    """``retriever serve`` on a free 127.0.0.1 port in its own process, with its peak memory sampled."""

    def __init__(self, index: Path, log: Path, extra_args: list[str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(Path(sys.executable).parent / "retriever"), "serve", "--index", str(index),
                   "--host", "127.0.0.1", "--port", str(self.port), "--max-documents", "1000", *extra_args]
        env = {**os.environ, "RETRIEVER_API_KEY": API_KEY}
        self.log = log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_rss_mb = 0.0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def wait_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout}s")

    def _sample(self) -> None:
        import psutil

        process = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                self.peak_rss_mb = max(self.peak_rss_mb, process.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.2)

    def stop(self) -> int:
        self._sampling = False
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code


# the load -----------------------------------------------------------------------------------------------------
def percentiles(times_ms: list[float]) -> dict[str, float]:
    if not times_ms:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    values = np.asarray(times_ms)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "mean_ms": float(values.mean())}


async def search_load(url: str, queries: list[str], clients: int, requests: int, mode: str,
                      deadline: float) -> dict[str, Any]:
    """``requests`` searches from ``clients`` concurrent clients; per-request latency and failures."""
    latencies: list[float] = []
    finished_at: list[float] = []
    failures: list[str] = []
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT) as http:

        async def client() -> None:
            nonlocal issued
            while issued < requests and time.monotonic() < deadline:
                query = queries[issued % len(queries)]
                issued += 1
                started = time.perf_counter()
                try:
                    response = await http.post("/search", json={"query": query, "k": 10, "mode": mode})
                    ok = response.status_code == 200 and len(response.json()["hits"]) == 10
                    if not ok:
                        failures.append(f"{response.status_code}: {response.text[:120]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                finished_at.append(time.monotonic())

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "clients": clients, "requests": issued, "answered": len(latencies), "failed": len(failures),
        "failures": failures[:5], "seconds": seconds, "throughput_rps": len(latencies) / seconds,
        **percentiles(latencies), "_finished_at": finished_at,
    }


async def add_documents(url: str, records: list[dict], batch: int, deadline: float) -> dict[str, Any]:
    """Add ``records`` in batches, one request at a time, as an ingest job would."""
    latencies, failures = [], []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT * 5) as http:
        for first in range(0, len(records), batch):
            if time.monotonic() > deadline:
                failures.append("deadline reached before every batch was sent")
                break
            sent = time.perf_counter()
            try:
                response = await http.post("/documents", json={"documents": records[first:first + batch]})
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:120]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            latencies.append((time.perf_counter() - sent) * 1000)
    seconds = time.perf_counter() - started
    return {"documents": len(records), "batch": batch, "requests": len(latencies), "failed": len(failures),
            "failures": failures[:5], "seconds": seconds, "documents_per_second": len(records) / seconds,
            **{f"batch_{k}": v for k, v in percentiles(latencies).items()}, "_ended_at": time.monotonic()}


async def lost_documents(url: str, records: list[dict], expected_total: int) -> dict[str, Any]:
    """Documents sent but not stored as sent, and the index's document count."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    lost: list[str] = []
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as http:

        async def check(record: dict) -> None:
            async with gate:
                response = await http.get(f"/documents/{record['_id']}")
            stored = response.json() if response.status_code == 200 else {}
            if stored.get("text") != record["text"] or stored.get("title") != record["title"]:
                lost.append(record["_id"])

        await asyncio.gather(*(check(record) for record in records))
        count = (await http.get("/info")).json()["counts"]["documents"]
    return {"lost": len(lost), "lost_ids": lost[:10], "documents": count, "expected_documents": expected_total}


async def run_level(index: Path, workdir: Path, clients: int, args: argparse.Namespace, queries: list[str],
                    to_add: list[dict], base_count: int) -> dict[str, Any]:
    served = workdir / f"index-{clients}"
    shutil.copytree(index, served)
    baseline = in_process_latency(served, queries, args.mode)  # same index, same moment, no server running
    level: dict[str, Any] = {"clients": clients, "in_process": baseline}
    if args.compare_unbatched:
        level["idle_unbatched"] = await idle_run(served, workdir / f"server-{clients}-unbatched.log",
                                                 [*args.server_args.split(), "--no-batch-searches"], clients, args,
                                                 queries)
    server = Server(served, workdir / f"server-{clients}.log", args.server_args.split())
    try:
        level["server_start_seconds"] = server.wait_ready()
        await search_load(server.url, queries, min(clients, 8), 50, args.mode, time.monotonic() + 120)  # warm up
        level["idle"] = await search_load(server.url, queries, clients, args.requests, args.mode,
                                          time.monotonic() + args.deadline)
        level["idle"].pop("_finished_at")
        if not args.idle_only:
            deadline = time.monotonic() + args.deadline
            writing, adding = await asyncio.gather(
                search_load(server.url, queries, clients, args.requests, args.mode, deadline),
                add_documents(server.url, to_add, args.batch, deadline),
            )
            ended = adding.pop("_ended_at")
            writing["answered_while_writing"] = sum(1 for t in writing.pop("_finished_at") if t <= ended)
            level.update(writing=writing, adding=adding)
            level.update(await lost_documents(server.url, to_add, base_count + len(to_add)))
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            level["server"] = (await http.get(f"{server.url}/info")).json()["server"]
    finally:
        level["server_exit_code"] = server.stop()
        level["server_peak_rss_mb"] = server.peak_rss_mb
        shutil.rmtree(served, ignore_errors=True)
    return level


async def idle_run(index: Path, log: Path, server_args: list[str], clients: int, args: argparse.Namespace,
                   queries: list[str]) -> dict[str, Any]:
    """Searches only, on a server of its own (started with ``server_args``)."""
    server = Server(index, log, server_args)
    try:
        server.wait_ready()
        await search_load(server.url, queries, min(clients, 8), 50, args.mode, time.monotonic() + 120)  # warm up
        run = await search_load(server.url, queries, clients, args.requests, args.mode,
                                time.monotonic() + args.deadline)
    finally:
        server.stop()
    run.pop("_finished_at")
    return run


# output ---------------------------------------------------------------------------------------------------------
def markdown_table(report: dict[str, Any]) -> str:
    rows = ["| clients | index | searches/s | p50 (ms) | p99 (ms) | p50 vs in-process | failed | lost docs |",
            "|---|---|---|---|---|---|---|---|"]
    for level in report["levels"]:
        baseline = level["in_process"]["p50_ms"]
        phases = [("idle_unbatched", "idle, --no-batch-searches"), ("idle", "idle"),
                  ("writing", f"adding {level['adding']['documents']} docs" if "adding" in level else "")]
        phases = [(phase, label) for phase, label in phases if phase in level]
        for phase, label in phases:
            run = level[phase]
            lost = str(level["lost"]) if phase == "writing" else "–"
            rows.append(f"| {level['clients']} | {label} | {run['throughput_rps']:.1f} | {run['p50_ms']:.0f} | "
                        f"{run['p99_ms']:.0f} | {run['p50_ms'] / baseline:.1f}x | {run['failed']} | {lost} |")
    return "\n".join(rows)


def summary(level: dict[str, Any]) -> str:
    idle = level["idle"]
    line = (f"{level['clients']} clients: in-process p50 {level['in_process']['p50_ms']:.1f} ms; idle "
            f"{idle['throughput_rps']:.1f}/s p50 {idle['p50_ms']:.0f} ms p99 {idle['p99_ms']:.0f} ms")
    if "writing" in level:
        writing, adding = level["writing"], level["adding"]
        line += (f"; writing {writing['throughput_rps']:.1f}/s p50 {writing['p50_ms']:.0f} ms p99 "
                 f"{writing['p99_ms']:.0f} ms ({writing['answered_while_writing']} answered during the adds, "
                 f"{adding['seconds']:.0f}s); lost {level['lost']}")
    failed = sum(level[p]["failed"] for p in ("idle_unbatched", "idle", "writing", "adding") if p in level)
    if "idle_unbatched" in level:
        line += (f"; unbatched idle {level['idle_unbatched']['throughput_rps']:.1f}/s "
                 f"p50 {level['idle_unbatched']['p50_ms']:.0f} ms")
    server = level.get("server", {})
    return line + f"; failed {failed}; searches per batch {server.get('searches_batched', 0)}/" \
                  f"{server.get('search_batches', 0)}"


def main() -> int:
    args = parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    base_records, to_add, queries = split_corpus(args.dataset, args.add, args.base)
    index = base_index(base_records)
    report: dict[str, Any] = {
        **provenance(),
        "environment": environment(),
        "config": {"base_documents": len(base_records), "added_documents": len(to_add), "batch": args.batch,
                   "requests_per_run": args.requests, "mode": args.mode, "k": 10, "queries": len(queries),
                   "server_args": args.server_args},
    }
    report["levels"] = []
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        for clients in levels:
            level = asyncio.run(run_level(index, Path(tmp), clients, args, queries, to_add, len(base_records)))
            report["levels"].append(level)
            print(summary(level), file=sys.stderr)
    phases = ("idle_unbatched", "idle", "writing", "adding")
    report["failed_requests"] = sum(lv[p]["failed"] for lv in report["levels"] for p in phases if p in lv)
    report["lost_documents"] = sum(lv.get("lost", 0) for lv in report["levels"])
    report["table"] = markdown_table(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print(f"results written to {args.output}", file=sys.stderr)
    complete = all(lv.get("documents") == lv.get("expected_documents") for lv in report["levels"])
    return 0 if report["failed_requests"] == 0 and report["lost_documents"] == 0 and complete else 1


if __name__ == "__main__":
    sys.exit(main())
