"""The SNS workload of bench/ingest.py: CloudWatch alarm notifications signed by a local CA.

Every message is a new occurrence (a fresh MessageId and a fresh StateChangeTime of one of 100
alarms), signed with SignatureVersion 2 by the leaf of the test CA (tests/sources/sns_testkit.py)
before the load starts: RSA signing is the sender's cost, not the daemon's. The daemon trusts
only that CA (`sns.ca_files`) and fetches the leaf once, from a loopback mirror, by the unchanged
SigningCertURL (`sns.mirror_url`); after that the certificate comes from its cache, as it does in
production. So each request costs the daemon what a real one does: parse, check the URL, topic
and freshness, verify one RSA signature, parse the alarm, record durably, answer.
"""

from __future__ import annotations

import http.server
import multiprocessing
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the signing helpers live with the tests

from tests.sources.sns_testkit import CERT_URL, TOPIC, local_pki, pem, sign, unsigned_message  # noqa: E402

PATH = "/webhooks/sns"
HEADERS = {"Content-Type": "text/plain; charset=UTF-8"}  # what SNS sends
ALARMS = 100


def alarm(n: int, changed_at: datetime) -> str:
    name = f"bench-alarm-{n % ALARMS:03d}"
    return orjson.dumps({
        "AlarmName": name, "AlarmDescription": None, "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM", "OldStateValue": "OK", "NewStateReason": "Threshold Crossed: 1 datapoint [97.1]",
        "StateChangeTime": (changed_at + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
        "Region": "US East (N. Virginia)", "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
        "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/RDS", "Statistic": "AVERAGE",
                    "Dimensions": [{"value": f"erp-db-{n % ALARMS:03d}", "name": "DBInstanceIdentifier"}],
                    "Period": 60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
                    "Threshold": 90.0, "TreatMissingData": "missing"},
    }).decode()


def _sign_range(task: tuple[int, int, str, str]) -> list[bytes]:
    start, stop, timestamp, changed_at = task
    base = datetime.fromisoformat(changed_at)
    return [orjson.dumps(sign(unsigned_message("Notification", MessageId=str(uuid.uuid4()), Timestamp=timestamp,
                                               Message=alarm(n, base))))
            for n in range(start, stop)]


def write_bodies(path: Path, count: int) -> None:
    """`count` signed notifications, one per line (compact JSON has no raw newline)."""
    local_pki()  # the keys exist before the fork, so every worker signs with the same leaf key
    now = datetime.now(UTC)
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    step = 2000
    tasks = [(i, min(i + step, count), timestamp, (now - timedelta(hours=1)).isoformat())
             for i in range(0, count, step)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool, path.open("wb") as out:
        for chunk in pool.imap(_sign_range, tasks):
            out.write(b"\n".join(chunk) + b"\n")


def write_trust(workdir: Path) -> Path:
    """The CA the daemon trusts, as a PEM file."""
    path = workdir / "bench-ca.pem"
    path.write_bytes(pem(local_pki().ca))
    return path


@contextmanager
def certificate_mirror() -> Iterator[str]:
    """A loopback server with the leaf at the path of CERT_URL; yields its base URL."""
    leaf, cert_path = pem(local_pki().leaf), urlsplit(CERT_URL).path

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == cert_path
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(leaf) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(leaf)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def daemon_settings(workdir: Path, mirror_url: str) -> dict[str, Any]:
    return {"sns": {"topics": [TOPIC], "ca_files": [str(write_trust(workdir))], "mirror_url": mirror_url}}
