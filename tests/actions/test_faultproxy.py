"""The fault proxy speaks each protocol's error shape the way botocore's own parsers read it."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser

from tests.support.faultproxy import FaultProxy, Rule, cbor_map, error_response

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260105/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"


@pytest.mark.parametrize(("protocol", "service"), [
    ("json", "ecs"), ("smithy-rpc-v2-cbor", "monitoring"), ("query", "rds"), ("ec2", "ec2"),
    ("rest-xml", "s3"), ("rest-xml", "route53"),
])
@pytest.mark.parametrize(("status", "code"), [(400, "ThrottlingException"), (403, "AccessDenied"),
                                              (503, "ServiceUnavailable")])
def test_error_shapes_parse_as_botocore_reads_them(protocol: str, service: str, status: int, code: str) -> None:
    shape = "cbor" if protocol == "smithy-rpc-v2-cbor" else protocol
    response = error_response(shape, service, Rule("Any", status=status, code=code, message="injected"))
    assert isinstance(response.body, bytes)
    parsed = create_parser(protocol).parse(
        {"status_code": response.status, "headers": HeadersDict(dict(response.headers)), "body": response.body},
        None)
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == "injected"


def test_a_bare_status_surfaces_as_its_number() -> None:
    response = error_response("json", "ecs", Rule("Any", status=403, code=""))
    parsed = create_parser("json").parse({"status_code": 403, "headers": HeadersDict(dict(response.headers)),
                                          "body": b""}, None)
    assert parsed["Error"]["Code"] == "403"


def test_cbor_map_encoding() -> None:
    assert cbor_map({"a": "bc"}) == bytes([0xA1, 0x61]) + b"a" + bytes([0x62]) + b"bc"
    long_text = "x" * 30
    assert cbor_map({"k": long_text})[3:5] == bytes([0x78, 30])


async def test_requests_are_identified_per_protocol(moto_url: str) -> None:
    proxy = FaultProxy(moto_url)
    url = await proxy.start()
    proxy.add(Rule("*", times=None, status=418, code="Teapot"))
    requests = [
        ("monitoring", "/service/GraniteServiceVersion20100801/operation/DescribeAlarms", {}, b""),
        ("ecs", "/", {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.UpdateService"}, b"{}"),
        ("rds", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=FailoverDBCluster&Version=1"),
        ("ec2", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=CreateSnapshot&Version=1"),
        ("s3", "/bucket/key?retention", {}, b""),
    ]
    try:
        async with aiohttp.ClientSession() as session:
            for service, path, headers, body in requests:
                async with session.post(url + path, data=body,
                                        headers={"Authorization": AUTH.format(service=service), **headers}) as answer:
                    assert answer.status == 418
    finally:
        await proxy.stop()
    assert [(h.service, h.protocol, h.operation) for h in proxy.log] == [
        ("monitoring", "cbor", "DescribeAlarms"), ("ecs", "json", "UpdateService"),
        ("rds", "query", "FailoverDBCluster"), ("ec2", "ec2", "CreateSnapshot"),
        ("s3", "rest-xml", "POST /bucket/key?retention")]
