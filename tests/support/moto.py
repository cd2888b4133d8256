"""moto server for tests: one threaded server per session, reset between tests (see docs/testing-aws.md).

moto runs in this process, so a test can also reach its backends to play the part of AWS where
moto does not (an ECS rollout that completes, an ElastiCache failover that swaps roles).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from moto.backends import get_backend
from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"
REGION = "us-east-1"

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port (never 0.0.0.0); yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _post(url: str, data: bytes = b"") -> None:
    # text/plain: with a form content type moto reads reset-auth's body as empty and fails.
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def reset_moto(url: str) -> None:
    """Forget every resource, and switch IAM enforcement off (reset alone keeps it)."""
    _post(f"{url}/moto-api/reset")
    _post(f"{url}/moto-api/reset-auth", b"inf")


def backend(service: str, region: str = REGION) -> Any:
    """moto's in-process state of `service` (to play AWS's part where moto does not)."""
    backends: Any = get_backend(cast(Any, service))  # typed per literal name; ours is a str
    return backends[ACCOUNT][region]


async def create_erp_api(ecs: Any) -> None:
    """The ERP API as an ECS service, through an ECS client to moto: cluster erp-prod, service
    erp-api, two tasks of erp/api:41."""
    await ecs.create_cluster(clusterName="erp-prod")
    task = await ecs.register_task_definition(
        family="erp-api", containerDefinitions=[{"name": "api", "image": "erp/api:41", "memory": 512}])
    await ecs.create_service(cluster="erp-prod", serviceName="erp-api", desiredCount=2,
                             taskDefinition=task["taskDefinition"]["taskDefinitionArn"])
