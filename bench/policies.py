"""Many policies: how matching and deciding slow down with 10, 100, 1,000 and 10,000 policies.

    .venv/bin/python bench/policies.py                  # 10, 100, 1,000, 10,000 policies
    .venv/bin/python bench/policies.py --counts 10 10000 --alerts 20000

Each set holds the bundled policies the benchmark's alerts match (so every set decides the same
requests), filled up to its size with policies shaped like the bundled ones: copies of a bundled
policy's steps under a match that does not hold for these alerts. Of every ten fillers, six name
an exact `alertname` (from a pool that grows with the set, so a name has about five policies)
with a label; one a regex name; one a glob name; one only CloudWatch dimensions (exact labels, no
name); one an exact name with a regex label; and one in a hundred only a regex label. So matching
is not a single dictionary lookup.

Two figures per size, each as a share of the 10-policy run in the same process (interleaved
rounds, the best of each kept):
- matching: `PolicyIndex.match` over a mix of alerts (the benchmark's own, CloudWatch alarms,
  names no policy knows), alerts per second;
- deciding: the engine's record-and-process path (`bench/engine.py`: SQLite, dry-run, as the
  daemon runs it) with that set, alerts per second.
It is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import engine as engine_bench
import yaml

from remediator.actions.registry import default_registry
from remediator.model import Alert, AlertStatus
from remediator.observability import configure_logging
from remediator.policy.loader import load_policies
from remediator.policy.match import PolicyIndex

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "policies"


def bundled_documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(BUNDLED.glob("*.yaml")):
        found += yaml.safe_load(path.read_text())["policies"]
    return found


def filler_match(i: int, names: int) -> dict[str, Any]:
    """A match shaped like a bundled policy's that none of the benchmark's alerts satisfies."""
    if i % 100 == 99:
        return {"source": "alertmanager", "labels": {"service": {"regex": f"erp-batch-{i}-.*"}}}
    kind = i % 10
    name = f"ErpAlert{i % names}"
    if kind == 6:
        return {"source": "alertmanager", "alertname": {"regex": f"Erp(Api|Web)Fault{i}(Major|Minor)?"},
                "labels": {"service": f"erp-svc-{i}"}}
    if kind == 7:
        return {"alertname": {"glob": f"Ward{i}*"}, "labels": {"severity": "critical"}}
    if kind == 8:
        return {"source": "cloudwatch", "labels": {"namespace": "AWS/RDS", "DBInstanceIdentifier": f"erp-db-{i}"}}
    if kind == 9:
        return {"source": "alertmanager", "alertname": name, "labels": {"instance": {"regex": f"10\\.{i % 250}\\..*"}}}
    return {"source": ["alertmanager", "cloudwatch"][i % 2], "alertname": name,
            "labels": {"service": f"erp-svc-{i}", "severity": {"in": ["critical", "warning"]}}}


def policy_set(count: int, hot: list[dict[str, Any]], shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    documents = [copy.deepcopy(d) for d in hot]
    names = max(1, count // 5)
    for i in range(count - len(documents)):
        filler = copy.deepcopy(shapes[i % len(shapes)])
        filler["name"] = f"filler-{i}"
        filler["match"] = filler_match(i, names)
        documents.append(filler)
    return documents


def write_set(documents: list[dict[str, Any]], directory: Path) -> Path:
    directory.mkdir()
    (directory / "policies.yaml").write_text(yaml.safe_dump({"policies": documents}, sort_keys=False))
    return directory


def own_alerts(count: int) -> list[Alert]:
    """The engine benchmark's alerts, from the primary in production: the bundled runbook's 5.1 matches them."""
    return [dataclasses.replace(a, labels={**a.labels, "env": "prod", "role": "primary"})
            for a in engine_bench.make_alerts(count)]


def mixed_alerts(count: int) -> list[Alert]:
    """The benchmark's own alerts, with CloudWatch alarms and unknown names among them."""
    own = own_alerts(count)
    now = datetime.now(UTC)
    mixed: list[Alert] = []
    for n, alert in enumerate(own):
        picked = alert
        if n % 4 == 1:
            picked = Alert(source="cloudwatch", name=f"erp-prod-rds-cpu-{n % 50}", status=AlertStatus.FIRING,
                          fingerprint=f"cw-{n % 50}", dedup_keys=(f"cw-{n}",), group_key=f"cw-{n % 50}",
                          labels={"namespace": "AWS/RDS", "DBInstanceIdentifier": f"erp-prod-{n % 7}",
                                  "metric_name": "CPUUtilization"},
                          starts_at=now, received_at=now)
        elif n % 4 == 2:
            picked = Alert(source="alertmanager", name=f"NobodyKnows{n % 300}", status=AlertStatus.FIRING,
                          fingerprint=f"un-{n % 300}", dedup_keys=(f"un-{n}",), group_key=f"un-{n % 300}",
                          labels={"service": f"erp-other-{n % 30}", "instance": "192.168.0.1"},
                          starts_at=now, received_at=now)
        mixed.append(picked)
    return mixed


def matching_rate(index: PolicyIndex, alerts: list[Alert], rounds: int) -> tuple[float, int]:
    """Alerts matched per second (the best of `rounds`) and the matches found in one round."""
    best, found = 0.0, 0
    for _ in range(rounds):
        started = time.perf_counter()
        found = sum(len(index.match(alert)) for alert in alerts)
        best = max(best, len(alerts) / (time.perf_counter() - started))
    return best, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts per run (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, the best kept (default 3)")
    args = parser.parse_args()
    configure_logging("warning")
    registry = default_registry()
    documents = bundled_documents()
    probe = PolicyIndex(load_policies(BUNDLED, registry))
    own = own_alerts(200)
    hot_names = {m.policy.name for alert in own for m in probe.match(alert)}
    hot = [d for d in documents if d["name"] in hot_names]
    if len(hot) > min(args.counts):
        raise SystemExit(f"the smallest set must hold the {len(hot)} policies the alerts match")
    shapes = [d for d in documents if d["name"] not in hot_names]
    mixed = mixed_alerts(args.alerts)
    decided_alerts = own_alerts(args.alerts)
    indexes: dict[int, PolicyIndex] = {}
    match_rates: dict[int, float] = dict.fromkeys(args.counts, 0.0)
    decide_rates: dict[int, float] = dict.fromkeys(args.counts, 0.0)
    found: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="remediator-policies-bench-") as tmp:
        directories = {count: write_set(policy_set(count, hot, shapes), Path(tmp) / f"set-{count}")
                       for count in args.counts}
        for count, directory in directories.items():
            loaded = load_policies(directory, registry)
            assert len(loaded) == count, (len(loaded), count)
            indexes[count] = PolicyIndex(loaded)
            matching_rate(indexes[count], mixed, 1)  # warm: the memo fills as a running daemon's has
        # Interleaved rounds, the best of each kept: a busy machine slows one run, not one size.
        for attempt in range(args.rounds):
            for count in args.counts:
                rate, found[count] = matching_rate(indexes[count], mixed, 1)
                match_rates[count] = max(match_rates[count], rate)
                workdir = Path(tmp) / f"engine-{count}-{attempt}"
                workdir.mkdir()
                run = asyncio.run(engine_bench.run_engine(decided_alerts, 16, workdir, policies_dir=directories[count],
                                                          log_level="error"))
                decide_rates[count] = max(decide_rates[count], run.alerts / run.seconds)
    results = [(count, match_rates[count], found[count], decide_rates[count]) for count in args.counts]
    base_match, base_decide = results[0][1], results[0][3]
    print(f"\nmany policies: {args.alerts} alerts per run; {len(hot)} bundled policies match them, "
          "the rest are fillers shaped like the bundled ones")
    print(f"{'policies':>9}{'matched/s':>12}{'share':>8}{'matches':>9}{'decided/s':>12}{'share':>8}")
    for count, rate, matches, decided in results:
        print(f"{count:9d}{rate:12.0f}{rate / base_match:8.1%}{matches:9d}{decided:12.0f}{decided / base_decide:8.1%}")


if __name__ == "__main__":
    main()
