"""Ingest benchmark: the daemon against a parse-only aiohttp baseline, in one run, same machine.

    .venv/bin/python bench/ingest.py                      # 30 s each, 50 senders, SQLite
    .venv/bin/python bench/ingest.py --duration 60 --store postgresql://postgres@127.0.0.1/test
    .venv/bin/python bench/ingest.py --source sns         # signed SNS notifications instead
    .venv/bin/python bench/ingest.py --skeleton           # bench/skeleton.py in the daemon's place

Both servers run as their own processes and get the same load: 50 concurrent senders posting a
realistic two-alert Alertmanager payload (the captured 0.25 one) for a fixed time. Every request
carries new alerts (fresh fingerprints across 100 alert groups), so the daemon does the whole
job: authenticate, parse, record durably (2xx only after COMMIT), and the engine correlates,
matches the bundled policies and records decisions while the load goes on. The load generator
is `wrk` when installed (it leaves the CPU to the servers), else a Python one (reported).
The daemon gets the whole duration at once; the baseline gets half of it just before and half
just after, and the ratio is taken against the mean of the two halves, because this machine's
speed drifts over minutes (the baseline alone has measured anywhere from 10,800 to 17,300 req/s).

With `--source sns` the senders post SNS notifications instead (bench/sns_load.py): CloudWatch
alarms, each a new occurrence, signed (SignatureVersion 2) by a local CA that the daemon is told
to trust; its certificate is fetched once and then cached. Signing happens before the load. The
baseline then parses the SNS envelope the same way (JSON only).

Printed: requests/s and p50/p99 acknowledgement latency of each run, the ratio, alerts processed
per second by the engine, the largest backlog seen, and how long the engine took to catch up.
It is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import sns_load

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = Path(os.environ.get("REMEDIATOR_CORPUS") or ROOT / "tests" / "corpus") / \
    "am-v0.25-firing-2-alerts.json"
TOKEN = "bench-token"

BASELINE = """
import sys, orjson
from aiohttp import web
async def handle(request):
    orjson.loads(await request.read())
    return web.json_response({"ok": True})
app = web.Application(client_max_size=1024 * 1024 + 1)
app.router.add_post(sys.argv[2], handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# wrk: each request gets two fresh fingerprints and one of 100 groups.
WRK_SCRIPT = """
local template = [[%s]]
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) thread_id = id end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
function request()
  counter = counter + 1
  local n = thread_id * 100000000 + counter
  local group = string.format("g%%03d", n %% 100)
  local body = template:gsub("@A@", string.format("%%016x", n * 2)):gsub("@B@", string.format("%%016x", n * 2 + 1))
  body = body:gsub("@G@", group)
  return wrk.format(nil, nil, nil, body)
end
"""

# wrk, SNS: the pre-signed bodies of a file, one per line; thread i of n sends lines i, i+n, ...
SNS_WRK_SCRIPT = """
local bodies = {}
local counter = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  stride = tonumber(args[2])
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain; charset=UTF-8"
function request()
  local index = (id + counter * stride) % #bodies + 1
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[index])
end
"""


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    extra: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def payload_template() -> str:
    body = PAYLOAD.read_text()
    body = body.replace("c9f75c09d90195e5", "@A@").replace("025cc091d9936184", "@B@")
    return body.replace('cluster=\\"prod-eu\\"}', 'cluster=\\"prod-eu\\", grp=\\"@G@\\"}')


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def run_wrk(url: str, seconds: int, connections: int, threads: int, bodies: Path | None = None) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (payload_template(), TOKEN) if bodies is None else SNS_WRK_SCRIPT)
    extra = [] if bodies is None else ["--", str(bodies), str(threads)]
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", script.name, url, *extra], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def latency(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, latency("50"), latency("99"), requests, errors)


def run_python_load(url: str, seconds: int, connections: int, bodies: Path | None = None) -> Result:
    """A fallback generator: aiohttp senders in a separate process."""
    code = f"""
import asyncio, time, json, aiohttp
TEMPLATE = {payload_template()!r}
BODIES = open({str(bodies)!r}, "rb").read().splitlines() if {bodies is not None} else None
HEADERS = {{"Authorization": "Bearer {TOKEN}", "Content-Type": "application/json"}} if BODIES is None \
    else {sns_load.HEADERS!r}
async def main():
    latencies, errors, counter = [], 0, [0]
    deadline = time.monotonic() + {seconds}
    async def sender(i, session):
        nonlocal errors
        while time.monotonic() < deadline:
            counter[0] += 1
            n = i * 100000000 + counter[0]
            if BODIES is None:
                body = TEMPLATE.replace("@A@", format(n * 2, "016x")).replace("@B@", format(n * 2 + 1, "016x"))
                body = body.replace("@G@", "g%03d" % (n % 100))
            else:
                body = BODIES[counter[0] % len(BODIES)]
            start = time.perf_counter()
            async with session.post({url!r}, data=body, headers=HEADERS) as r:
                await r.read()
                errors += r.status != 200
            latencies.append(time.perf_counter() - start)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(sender(i, session) for i in range({connections})))
    latencies.sort()
    print(json.dumps({{"n": len(latencies), "errors": errors, "p50": latencies[len(latencies) // 2],
                      "p99": latencies[int(len(latencies) * 0.99)]}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return Result(data["n"] / seconds, data["p50"] * 1000, data["p99"] * 1000, data["n"], data["errors"])


@dataclass(frozen=True)
class Workload:
    """What the senders post, where, and which daemon settings that needs."""

    source: str
    path: str
    bodies: Path | None = None  # pre-signed SNS bodies; None: Alertmanager payloads made on the fly
    settings: dict[str, object] = field(default_factory=dict)

    def accepted_metric(self) -> str:
        return f'remediator_alerts_received_total{{result="accepted",source="{self.source}"}}'

    def duplicate_metric(self) -> str:
        return f'remediator_alerts_received_total{{result="duplicate",source="{self.source}"}}'


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def load(url: str, args: argparse.Namespace, work: Workload, seconds: int) -> Result:
    if args.generator == "wrk":
        return run_wrk(url, seconds, args.connections, args.threads, work.bodies)
    return run_python_load(url, seconds, args.connections, work.bodies)


def bench_baseline(args: argparse.Namespace, work: Workload, seconds: int) -> Result:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BASELINE, str(port), work.path])
    try:
        time.sleep(1.0)
        return load(f"http://127.0.0.1:{port}{work.path}", args, work, seconds)
    finally:
        server.terminate()
        server.wait()


@dataclass
class Watched:
    """A load run against a server that processes what it acknowledges, with its backlog watched."""

    result: Result
    loaded_seconds: float
    backlog_seen: list[float]
    backlog_at_end: float
    catch_up_seconds: float

    def extra(self, accepted: float, processed: float, duplicates: float) -> dict[str, float]:
        seen = self.backlog_seen
        return {
            "alerts_accepted": accepted, "processed_per_second_under_load": processed / self.loaded_seconds,
            "max_backlog": max(seen, default=0.0), "backlog_at_end": self.backlog_at_end,
            "catch_up_seconds": self.catch_up_seconds, "backlog_samples": float(len(seen)),
            "duplicates": duplicates, "backlog_trend": seen[-1] - seen[len(seen) // 2] if seen else 0.0,
        }


def load_and_watch(url: str, args: argparse.Namespace, work: Workload, backlog: Callable[[], float],
                   at_end: Callable[[], None] = lambda: None) -> Watched:
    """The load, with `backlog` sampled every 2 s; `at_end` runs as soon as the load stops (to read
    counters before the backlog drains); then wait until the backlog is gone."""
    seen: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(2.0):
            seen.append(backlog())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    result = load(url, args, work, args.duration)
    loaded = time.monotonic() - started
    stop.set()
    sampler.join()
    at_end()
    left = backlog()
    caught_up = time.monotonic()
    while backlog() > 0:
        time.sleep(0.2)
    return Watched(result, loaded, seen, left, time.monotonic() - caught_up)


def bench_daemon(args: argparse.Namespace, workdir: Path, work: Workload) -> Result:
    port, admin_port = free_port(), free_port()
    settings = workdir / "settings.yaml"
    settings.write_text(json.dumps({
        "listen": {"port": port}, "admin_listen": {"port": admin_port}, "policies_dir": str(ROOT / "policies"),
        "store": {"url": args.store or f"sqlite:///{workdir / 'bench.db'}",
                  **({"schema_name": args.schema} if args.schema else {})},
        "alertmanager": {"bearer_tokens": [TOKEN]}, "log": {"level": "warning"}, **work.settings,
    }))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "remediator", "--config", str(settings), "serve"], env=env)
    base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"  # webhooks; metrics
    try:
        wait_http(f"{admin}/readyz")
        processed: list[float] = []
        # The store's own count of recorded-but-unprocessed alerts (read at each scrape).
        watched = load_and_watch(f"{base}{work.path}", args, work, lambda: metric(admin, "remediator_backlog"),
                                 lambda: processed.append(metric(admin, "remediator_alerts_processed_total")))
        time.sleep(1.5)  # intake processes relay their counters to the core every second
        watched.result.extra = watched.extra(metric(admin, work.accepted_metric()), processed[0],
                                             metric(admin, work.duplicate_metric()))
        return watched.result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def bench_skeleton(args: argparse.Namespace, workdir: Path, work: Workload) -> Result:
    """bench/skeleton.py in the daemon's place: the same load, the writes each alert requires, nothing else."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "skeleton.py"), str(port),
                               str(workdir / "skeleton.db")])

    def stats() -> dict[str, float]:
        with urllib.request.urlopen(f"{base}/stats", timeout=5) as response:
            return dict(json.loads(response.read()))

    try:
        wait_http(f"{base}/stats")
        during: list[dict[str, float]] = []
        watched = load_and_watch(f"{base}{work.path}", args, work, lambda: stats()["backlog"],
                                 lambda: during.append(stats()))
        watched.result.extra = watched.extra(during[0]["accepted"], during[0]["processed"], 0.0)
        return watched.result
    finally:
        server.terminate()
        server.wait(timeout=60)


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per server (default 30)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent senders (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--store", help="store URL for the daemon (default: a fresh SQLite file)")
    parser.add_argument("--schema", help="PostgreSQL schema (default: a fresh one, dropped afterwards)")
    parser.add_argument("--generator", choices=["wrk", "python"],
                        default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--source", choices=["alertmanager", "sns"], default="alertmanager",
                        help="what the senders post (default alertmanager)")
    parser.add_argument("--skeleton", action="store_true",
                        help="load bench/skeleton.py instead of the daemon (Alertmanager on SQLite only): the "
                             "writes each alert requires and nothing else, the floor under the daemon's figures")
    parser.add_argument("--messages", type=int, default=0,
                        help="SNS messages signed before the load (default 4000 per second of --duration); "
                             "re-sent from the start when the senders use them all, then counted as duplicates")
    args = parser.parse_args()
    if args.skeleton and (args.source != "alertmanager" or args.store):
        parser.error("--skeleton takes Alertmanager payloads into SQLite only")
    fresh_schema = bool(args.store and args.store.startswith(("postgresql://", "postgres://")) and not args.schema)
    if fresh_schema:
        args.schema = f"bench_{secrets.token_hex(4)}"  # every run starts empty, as the SQLite one does
    try:
        with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp, contextlib.ExitStack() as stack:
            work = workload(args, Path(tmp), stack)
            # The baseline runs half before and half after the daemon: this machine's speed drifts
            # over minutes, and the ratio is taken against the mean of both halves.
            half = max(1, args.duration // 2)
            before = bench_baseline(args, work, half)
            daemon = (bench_skeleton if args.skeleton else bench_daemon)(args, Path(tmp), work)
            after = bench_baseline(args, work, half)
    finally:
        if fresh_schema:
            asyncio.run(drop_schema(args.store, args.schema))
    store = (args.store or "sqlite").split("@")[-1]
    print(f"\ningest benchmark ({args.source}): {args.connections} senders, daemon {args.duration}s, baseline "
          f"2 x {max(1, args.duration // 2)}s, "
          f"generator {args.generator}, store {store}, {os.cpu_count()} CPUs")
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>11}{'errors':>8}")
    baseline_rps = (before.requests_per_second + after.requests_per_second) / 2
    measured = "skeleton" if args.skeleton else "remediator"
    for name, r in (("baseline, before", before), (measured, daemon), ("baseline, after", after)):
        print(f"{name:24}{r.requests_per_second:10.0f}{r.p50_ms:10.2f}{r.p99_ms:10.2f}{r.requests:11d}{r.errors:8d}")
    print(f"\nratio {measured} / parse-only baseline (mean of before and after, {baseline_rps:.0f} req/s): "
          f"{daemon.requests_per_second / baseline_rps:.1%} of requests per second")
    e = daemon.extra
    print(f"engine: {e['alerts_accepted']:.0f} alerts accepted, {e['processed_per_second_under_load']:.0f} "
          f"processed/s under load, largest backlog {e['max_backlog']:.0f}, backlog at the end of the load "
          f"{e['backlog_at_end']:.0f} (change over the second half {e['backlog_trend']:+.0f}), "
          f"caught up {e['catch_up_seconds']:.1f}s after the load stopped")
    if e["duplicates"]:
        print(f"note: {e['duplicates']:.0f} deliveries were duplicates (the signed messages ran out; raise --messages)")


def workload(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> Workload:
    if args.source == "alertmanager":
        return Workload("alertmanager", "/webhooks/alertmanager")
    mirror_url = stack.enter_context(sns_load.certificate_mirror())
    bodies = workdir / "sns-bodies.txt"
    count = args.messages or args.duration * 4000
    started = time.monotonic()
    sns_load.write_bodies(bodies, count)
    print(f"signed {count} SNS notifications in {time.monotonic() - started:.1f}s (not part of the load)")
    return Workload("sns", sns_load.PATH, bodies, sns_load.daemon_settings(workdir, mirror_url))


if __name__ == "__main__":
    main()
