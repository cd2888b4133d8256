"""Compression bombs: what other senders see while bombs arrive, against the same senders alone.

    .venv/bin/python bench/bombs.py                        # 2 rounds x 10 s per phase, 10 senders, 5 bombs
    .venv/bin/python bench/bombs.py --seconds 20 --interval 0.5   # each bomber paced

`remediator serve` runs as users run it (the core and one intake process, SQLite). Ordinary
senders post small valid Alertmanager bodies (a fresh alert each) back to back, and their
acknowledgement latency is measured in three phases of the same run, repeated in rounds (the
machine's speed drifts; each phase's numbers pool its rounds):

  baseline         the senders alone
  bombs, no auth   five bombers in parallel, each posting a gzip bomb (1 MB inflating to about
                   1 GiB) without credentials, again as soon as it is answered
  bombs, auth      the same bombs with the webhook's token (so they are inflated, up to the limit)

The bombers run in a process of their own. Printed for each phase: requests, p50, p99 and max
latency of the ordinary senders, p99 as a ratio of the baseline's, the CPU time the daemon (core
and intake) used, and what the bombs were answered and cost the daemon each (its CPU time beyond
what the ordinary requests cost at the baseline's rate). By default the bombers send as fast as
they are answered (on loopback, over a hundred bombs a second: far more than five at once);
`--interval` paces them. They share the machine's CPUs with the daemon and the senders. The
target is a p99 under 50 ms while bombs arrive. It is a benchmark, not a test: nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.alertmanager import gzip_bomb, webhook_body  # noqa: E402

TOKEN = "bench-bombs-token"
PATH = "/webhooks/alertmanager"
BOMB_INFLATED = 1000 * 1024 * 1024  # about 1 MB on the wire: within the default max_body_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def bomber(url: str, count: int, authenticated: bool, interval: float, stop: multiprocessing.synchronize.Event,
           answers: multiprocessing.queues.Queue[dict[str, int]]) -> None:
    """`count` bombers, each sending a bomb again `interval` s after the last was answered, until `stop`."""
    bomb = gzip_bomb(BOMB_INFLATED)
    headers = {"Content-Encoding": "gzip", **({"Authorization": f"Bearer {TOKEN}"} if authenticated else {})}

    async def one(session: aiohttp.ClientSession, seen: Counter[str]) -> None:
        while not stop.is_set():
            try:
                async with session.post(url, data=bomb, headers=headers) as answer:
                    await answer.read()
                    seen[str(answer.status)] += 1
            except aiohttp.ClientError as exc:  # the server may close a connection it refused
                seen[type(exc).__name__] += 1
            await asyncio.sleep(interval)

    async def run() -> None:
        seen: Counter[str] = Counter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.gather(*(one(session, seen) for _ in range(count)))
        answers.put(dict(seen))

    asyncio.run(run())


async def senders(url: str, count: int, seconds: float, phase: str) -> list[float]:
    """Latencies (s) of `count` senders posting fresh small alerts back to back for `seconds`."""
    latencies: list[float] = []
    failures: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    started = datetime.now(UTC)

    async def sender(index: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = webhook_body("BenchBombs", {"instance": f"i-{index}"}, fingerprint=f"{phase}-{index}-{n}",
                                starts_at=started)
            begin = time.perf_counter()
            async with session.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                await answer.read()
                if answer.status != 200:
                    failures[answer.status] += 1
            latencies.append(time.perf_counter() - begin)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(sender(i, session) for i in range(count)))
    if failures:
        print(f"  {phase}: non-200 answers to ordinary senders: {dict(failures)}")
    return sorted(latencies)


def daemon_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the daemon: the core and its intake processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            pending += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))] * 1000


@dataclass
class Phase:
    name: str
    latencies: list[float]  # seconds, sorted
    daemon_cpu: float  # seconds
    bomb_answers: dict[str, int]

    @staticmethod
    def pooled(rounds: tuple[Phase, ...]) -> Phase:
        """The same phase over several rounds: the machine's drift is spread over every phase alike."""
        answers: Counter[str] = Counter()
        for one in rounds:
            answers.update(one.bomb_answers)
        return Phase(rounds[0].name, sorted(t for one in rounds for t in one.latencies),
                     sum(one.daemon_cpu for one in rounds), dict(answers))

    def line(self, baseline: Phase) -> str:
        p99 = percentile(self.latencies, 0.99)
        text = (f"  {self.name:<15} requests {len(self.latencies):>6}  p50 {percentile(self.latencies, 0.5):7.2f} ms  "
                f"p99 {p99:7.2f} ms ({p99 / percentile(baseline.latencies, 0.99):4.2f}x baseline)  "
                f"max {self.latencies[-1] * 1000:7.2f} ms  daemon CPU {self.daemon_cpu:5.2f} s")
        bombs = sum(self.bomb_answers.values())
        if not bombs:
            return text
        # The daemon's CPU beyond what the ordinary requests cost at the baseline's rate, per bomb.
        ordinary = baseline.daemon_cpu / len(baseline.latencies) * len(self.latencies)
        return text + f"  bombs answered {self.bomb_answers}, {(self.daemon_cpu - ordinary) / bombs * 1000:.1f} ms each"


def phase(url: str, args: argparse.Namespace, name: str, bombs: bool | None, pid: int) -> Phase:
    """One phase: the senders, with bombers in parallel unless `bombs` is None (True: with credentials)."""
    context = multiprocessing.get_context("spawn")
    stop, answers = context.Event(), context.Queue()
    process = None
    if bombs is not None:
        process = context.Process(target=bomber, args=(url, args.bombs, bombs, args.interval, stop, answers))
        process.start()
        time.sleep(args.warmup)  # the bombs are arriving when the measurement starts
    cpu = daemon_cpu(pid)
    latencies = asyncio.run(senders(url, args.senders, args.seconds, name.replace(" ", "-").replace(",", "")))
    cpu = daemon_cpu(pid) - cpu
    bomb_answers: dict[str, int] = {}
    if process is not None:
        stop.set()
        bomb_answers = answers.get(timeout=120)
        process.join(60)
    return Phase(name, latencies, cpu, bomb_answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--senders", type=int, default=10, help="ordinary senders, each one request at a time")
    parser.add_argument("--bombs", type=int, default=5, help="bombs in flight at once")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three phases, interleaved")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="each bomber's pause between two bombs (0: send again as soon as answered)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of bombs before measuring")
    args = parser.parse_args()
    gzip_bomb(BOMB_INFLATED)  # built once, before anything is measured
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as work:
        workdir = Path(work)
        (workdir / "policies").mkdir()
        port, admin_port = free_port(), free_port()
        settings = workdir / "settings.yaml"
        settings.write_text(json.dumps({
            "listen": {"port": port}, "admin_listen": {"port": admin_port}, "policies_dir": str(workdir / "policies"),
            "store": {"url": f"sqlite:///{workdir / 'bench.db'}"}, "alertmanager": {"bearer_tokens": [TOKEN]},
            "log": {"level": "warning"},
        }))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "remediator", "--config", str(settings), "serve"], env=env)
        try:
            wait_ready(f"http://127.0.0.1:{admin_port}/readyz")
            url = f"http://127.0.0.1:{port}{PATH}"
            asyncio.run(senders(url, args.senders, args.warmup, "warm-up"))  # first connections, caches
            phases: dict[str, bool | None] = {"baseline": None, "bombs, no auth": False, "bombs, auth": True}
            rounds = [[phase(url, args, name, bombs, server.pid) for name, bombs in phases.items()]
                      for _ in range(args.rounds)]
            results = [Phase.pooled(same) for same in zip(*rounds, strict=True)]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    print(f"{args.senders} senders, {args.bombs} bombs of {len(gzip_bomb(BOMB_INFLATED)):,} bytes "
          f"(inflating to {BOMB_INFLATED:,}), {args.interval:g} s between a bomber's bombs, "
          f"{args.rounds} x {args.seconds:g} s per phase, interleaved")
    for result in results:
        print(result.line(results[0]))


if __name__ == "__main__":
    main()
