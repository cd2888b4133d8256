"""A reverse proxy between aiobotocore and moto server that injects AWS-shaped faults.

moto has no switch for throttling, 5xx, dropped connections or slow answers, and lacks a few
operations. This proxy sits on 127.0.0.1:0, forwards everything else untouched, and answers
matching requests itself with the error shape each AWS protocol really uses, so botocore's own
parsers, retry handler and modeled exceptions see what they would see from AWS.

    proxy = FaultProxy(moto_url); url = await proxy.start()
    proxy.add(Rule("UpdateService", times=2, code="ThrottlingException"))   # json, 400
    proxy.add(Rule("DescribeDBClusters", mode="reset"))                       # drop the connection
    proxy.add(Rule("TestFailover", mode="canned", status=200, body=XML))      # fill a moto gap
    proxy.log  # [Hit(service, protocol, operation, status), ...]; 0: reset by us, 499: client gave up

The operation is the API name for json (X-Amz-Target), smithy-rpc-v2-cbor (/operation/<Op>),
query and ec2 (Action=); for rest-xml (S3, Route 53) it is "METHOD /path[?query keys]".
A rule's `operation` is an fnmatch pattern over that name.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal, NamedTuple
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

Protocol = Literal["json", "cbor", "query", "ec2", "rest-xml"]
Mode = Literal["error", "reset", "delay", "canned", "pass"]
CREDENTIAL = re.compile(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
CLIENT_GAVE_UP = 499  # logged for a delayed request the client stopped waiting for
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
QUERY_NS = {
    "rds": "http://rds.amazonaws.com/doc/2014-10-31/",
    "elasticache": "http://elasticache.amazonaws.com/doc/2015-02-02/",
}


class Hit(NamedTuple):
    """One request the proxy saw and what it answered (0: we reset it; 499: the client gave up)."""

    service: str
    protocol: str
    operation: str
    status: int


@dataclass
class Rule:
    """Answer matching requests `times` times (None: forever) instead of forwarding them.

    mode "error": `status` + `code` + `message` in the protocol's error shape (an empty `code`
    sends the status with an empty body, like a bare 403); "reset": drop the TCP connection;
    "delay": wait `delay` seconds, then forward; "canned": `status`, `headers`, `body` as given;
    "pass": forward untouched (placed before an error rule: "the first N calls succeed").
    """

    operation: str
    mode: Mode = "error"
    times: int | None = 1
    service: str | None = None
    status: int = 400
    code: str = "ThrottlingException"
    message: str = "injected by faultproxy"
    delay: float = 0.0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fired: int = 0

    def matches(self, service: str, operation: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.service is not None and self.service != service:
            return False
        return fnmatch.fnmatchcase(operation, self.operation)


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 24:
        return bytes([0x60 | len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    return bytes([0x79]) + len(raw).to_bytes(2, "big") + raw


def cbor_map(values: dict[str, str]) -> bytes:
    """A CBOR map of text to text (all an error body needs), per RFC 8949."""
    assert len(values) < 24
    out = bytes([0xA0 | len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def error_response(protocol: str, service: str, rule: Rule) -> web.Response:
    """The error `rule` describes, shaped the way `protocol` carries errors."""
    request_id = str(uuid.uuid4())
    code, message, status = rule.code, rule.message, rule.status
    if not code:
        return web.Response(status=status, body=b"", headers={"x-amzn-RequestId": request_id})
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return web.Response(status=status, body=body, headers={
            "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id,
            "Content-Type": "application/x-amz-json-1.1"})
    if protocol == "cbor":
        return web.Response(status=status, body=cbor_map({"__type": code, "message": message}), headers={
            "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
            "x-amzn-RequestId": request_id})
    if protocol == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
               f"<RequestID>{request_id}</RequestID></Response>")
    elif protocol == "query":
        ns = QUERY_NS.get(service, f"https://{service}.amazonaws.com/doc/")
        xml = (f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>{code}</Code>'
               f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    return web.Response(status=status, body=('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode(),
                        headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id})


def identify(request: web.Request, body: bytes) -> tuple[str, Protocol, str]:
    """(service, protocol, operation) of a signed AWS request."""
    found = CREDENTIAL.search(request.headers.get("Authorization", ""))
    service = found.group(2) if found else "unknown"
    target = request.headers.get("X-Amz-Target")
    if target:
        return service, "json", target.rsplit(".", 1)[-1]
    if "/operation/" in request.path:
        return service, "cbor", request.path.rsplit("/operation/", 1)[1]
    if request.content_type == "application/x-www-form-urlencoded":
        action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
        if action:
            return service, ("ec2" if service == "ec2" else "query"), action
    keys = sorted(request.query.keys())
    suffix = "?" + "&".join(keys) if keys else ""
    return service, "rest-xml", f"{request.method} {request.path}{suffix}"


class FaultProxy:
    """The proxy; `add` rules, point clients at `url`, read `log`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.log: list[Hit] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()
        self.log.clear()

    def operations(self, service: str | None = None) -> list[str]:
        """The operations seen, in order (of one service when given)."""
        return [hit.operation for hit in self.log if service is None or hit.service == service]

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _rule_for(self, service: str, operation: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(service, operation):
                rule.fired += 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        service, protocol, operation = identify(request, body)
        rule = self._rule_for(service, operation)
        if rule is not None and rule.mode == "reset":
            self.log.append(Hit(service, protocol, operation, 0))
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by faultproxy")
        if rule is not None and rule.mode == "error":
            response = error_response(protocol, service, rule)
        elif rule is not None and rule.mode == "canned":
            response = web.Response(status=rule.status, body=rule.body, headers=rule.headers)
        else:
            try:
                if rule is not None:
                    await asyncio.sleep(rule.delay)
                response = await self._forward(request, body)
            except asyncio.CancelledError:
                self.log.append(Hit(service, protocol, operation, CLIENT_GAVE_UP))
                raise
        self.log.append(Hit(service, protocol, operation, response.status))
        return response

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        # Host stays as signed: with IAM enforcement on, moto checks the SigV4 signature.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP or k.lower() == "host"}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body, allow_redirects=False) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out)
