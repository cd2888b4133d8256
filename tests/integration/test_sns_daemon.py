"""SNS through the daemon as users run it: `remediator serve`, webhooks handled by an intake process.

The intake process verifies (fetching the certificate from a loopback mirror, trusting only the
test CA), records and answers; the core's engine opens the incident; the intake's counters reach
the core's /metrics; and a SubscriptionConfirmation is confirmed from the intake process, which
has AWS clients of its own for it (moto behind a recording proxy).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.sources.sns_testkit import TOPIC
from tests.support.process import DaemonProcess
from tests.support.sns import TEXT_PLAIN, CertMirror, RecordingProxy, create_topic, signed

pytestmark = pytest.mark.integration

ALARM = json.dumps({"AlarmName": "erp-api-5xx", "NewStateValue": "ALARM", "OldStateValue": "OK",
                    "StateChangeTime": "2026-01-05T08:59:00.000+0000",
                    "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:erp-api-5xx"})


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def sns_daemon(tmp_path: Path, cert_mirror: CertMirror, local_ca_file: Path,
               moto_proxy: RecordingProxy) -> Iterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    daemon = DaemonProcess({
        "listen": {"port": 0}, "admin_listen": {"port": 0}, "policies_dir": str(tmp_path / "policies"),
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "sns": {"topics": [TOPIC], "ca_files": [str(local_ca_file)], "mirror_url": cert_mirror.url},
        "aws": {"endpoint_url": moto_proxy.url, "region": "eu-west-1", "max_attempts": 2},
        "intake": {"processes": 1},
    }, tmp_path)
    try:
        yield daemon.start()
    finally:
        daemon.terminate()


async def post(http: aiohttp.ClientSession, daemon: DaemonProcess, payload: bytes) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{daemon.url}/webhooks/sns", data=payload, headers=TEXT_PLAIN) as response:
        return response.status, await response.json()


async def sample(http: aiohttp.ClientSession, daemon: DaemonProcess, name: str, **labels: str) -> float:
    async with http.get(f"{daemon.admin_url}/metrics") as response:
        text = await response.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_signed_notification_is_verified_by_the_intake_process_and_processed_by_the_core(
    sns_daemon: DaemonProcess, http: aiohttp.ClientSession, cert_mirror: CertMirror,
) -> None:
    assert await post(http, sns_daemon, signed(Message=ALARM, Timestamp=now_stamp())) == \
        (200, {"accepted": 1, "duplicates": 0})
    forged = await post(http, sns_daemon, signed(Message=ALARM, Timestamp=now_stamp(), key_name="intruder"))
    assert forged[0] == 403 and forged[1]["error"] == "bad_signature"
    assert len(cert_mirror.certificate_fetches) == 1  # the second message used the cached certificate
    assert sns_daemon.events("intake_ready")  # answered by the intake process, not the core

    async def incident_opened() -> bool:
        async with http.get(f"{sns_daemon.admin_url}/api/v1/incidents") as response:
            return any(i["title"].startswith("erp-api-5xx") for i in (await response.json())["incidents"])

    await sns_daemon.wait_for(incident_opened, "the core's engine to open the incident")

    async def counted() -> bool:
        verified = await sample(http, sns_daemon, "remediator_sns_deliveries_total",
                                type="notification", result="verified")
        refused = await sample(http, sns_daemon, "remediator_sns_deliveries_total",
                               type="notification", result="bad_signature")
        return (verified, refused) == (1.0, 1.0)

    await sns_daemon.wait_for(counted, "the intake's counters to reach the core's /metrics")


async def test_the_intake_process_confirms_a_subscription_with_aws_clients_of_its_own(
    sns_daemon: DaemonProcess, http: aiohttp.ClientSession, moto_proxy: RecordingProxy, moto: str,
) -> None:
    assert await create_topic(moto, "remediator-alerts") == TOPIC
    status, answer = await post(http, sns_daemon, signed("SubscriptionConfirmation", Timestamp=now_stamp()))
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0})
    [call] = moto_proxy.calls("ConfirmSubscription")
    assert call["TopicArn"] == TOPIC and call["AuthenticateOnUnsubscribe"] == "true"
    assert moto_proxy.regions == ["us-east-1"]
