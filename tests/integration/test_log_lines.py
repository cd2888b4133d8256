"""Every line the daemon writes is one JSON object, whatever its clients send.

The daemon starts as users start it (`remediator serve`, default layout: the core and one intake
process), hostile clients hit its public port (bad JSON, bodies cut short, clients gone mid-body,
malformed request lines and framing over a raw socket, huge headers, bad credentials, wrong content
types, a corrupt gzip body), it is stopped, and every line of its stdout and stderr is parsed.
Conditions clients cause are info or warning, without a traceback. Internal errors are provoked
in a way only this test can: a `sitecustomize` on the daemon's PYTHONPATH wraps the Alertmanager
parser so that marked bodies raise in the handler, in a task nobody awaits, and in a thread;
each is one `error` line with its traceback in one field.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.support.process import DaemonProcess

pytestmark = pytest.mark.integration

TOKEN = "am-log-lines-token"
REQUIRED = {"timestamp", "level", "logger", "process", "event"}
SITECUSTOMIZE = '''
import asyncio
import threading

import remediator.sources.alertmanager as source

_parse = source.parse_alertmanager


def parse_alertmanager(body, *args, **kwargs):
    if b"ProvokeHandlerError" in body:
        raise RuntimeError("provoked in the handler")
    if b"ProvokeTaskError" in body:
        async def fail():
            raise RuntimeError("provoked in a task nobody awaits")
        asyncio.get_running_loop().create_task(fail())
    if b"ProvokeThreadError" in body:
        def fail():
            raise RuntimeError("provoked in a thread")
        threading.Thread(target=fail, name="provoked").start()
    return _parse(body, *args, **kwargs)


source.parse_alertmanager = parse_alertmanager
'''


def request(path: str, body: bytes = b"", *, headers: dict[str, str] | None = None, method: str = "POST") -> bytes:
    head = {"Host": "remediator", "Content-Length": str(len(body)), **(headers or {})}
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode() \
        + body


AM = "/webhooks/alertmanager"
TLS_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"  # https spoken to the plain port
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
# name: (bytes sent, what the client does then: "answer" waits for it, "close" hangs up, "half" ends its side)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "bad json": (request(AM, b'{"version": "4", "alerts": [', headers=BEARER), "answer"),
    "not an object": (request(AM, b"[1, 2, 3]", headers=BEARER), "answer"),
    "body cut short": (request(AM, b'{"version": "4"', headers={**BEARER, "Content-Length": "4000"}), "half"),
    "client gone mid-body": (request(AM, b'{"vers', headers={**BEARER, "Content-Length": "4000"}), "close"),
    "chunked body cut short": (f"POST {AM} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
                               + b"Transfer-Encoding: chunked\r\n\r\n400\r\n{\"ver", "close"),
    "garbage request line": (b"GARBAGE\r\n\r\n", "answer"),
    "tls on keep-alive": (request("/healthz", method="GET") + TLS_HELLO, "answer"),
    "unknown http version": (b"GET /healthz HTTP/7.0\r\nHost: x\r\n\r\n", "answer"),
    "header without colon": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n", "answer"),
    "nul in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "answer"),
    "huge header": (request("/healthz", method="GET", headers={"X-Huge": "a" * 20_000}), "answer"),
    "many headers": (request("/healthz", method="GET", headers={f"X-H{i}": "b" * 100 for i in range(300)}),
                     "answer"),
    "invalid chunk size": (b"POST " + AM.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\nabc\r\n0\r\n\r\n", "answer"),
    "content-length and chunked": (b"POST " + AM.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "answer"),
    "corrupt gzip": (request(AM, b"\x1f\x8bnot gzip at all", headers={**BEARER, "Content-Encoding": "gzip"}),
                     "answer"),
    "wrong bearer": (request(AM, b"{}", headers={"Authorization": "Bearer wrong"}), "answer"),
    "broken basic auth": (request(AM, b"{}", headers={"Authorization": "Basic !!!not-base64"}), "answer"),
    "text/plain": (request(AM, b"hello", headers={**BEARER, "Content-Type": "text/plain"}), "answer"),
    "multipart": (request(AM, b"--x\r\n\r\nhello\r\n--x--", headers={
        **BEARER, "Content-Type": "multipart/form-data; boundary=x"}), "answer"),
    "sns garbage": (request("/webhooks/sns", b"\xff\xfe not json", headers={"Content-Type": "text/plain"}),
                    "answer"),
    "unknown path": (request("/wp-login.php", method="GET"), "answer"),
}
PROVOKED = {
    "handler": (b'{"ProvokeHandlerError": 1}', "provoked in the handler"),
    "task": (b'{"ProvokeTaskError": 1}', "provoked in a task nobody awaits"),
    "thread": (b'{"ProvokeThreadError": 1}', "provoked in a thread"),
}


def send(port: int, data: bytes, then: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if then == "close":
            time.sleep(0.2)  # the daemon is reading the body when the client goes
            return b""
        if then == "half":
            sock.shutdown(socket.SHUT_WR)
        try:
            return sock.recv(200)
        except TimeoutError:
            return b"(no answer)"


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"a line that is not JSON: {line!r}")
        assert isinstance(event, dict) and event.keys() >= REQUIRED, line
        events.append(event)
    return events


@pytest.fixture
def daemon(tmp_path: Path) -> DaemonProcess:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return DaemonProcess({
        "listen": {"port": 0}, "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "policies_dir": str(ROOT / "policies"), "alertmanager": {"bearer_tokens": [TOKEN]},
    }, tmp_path, env={"PYTHONPATH": f"{site}:{ROOT}"})


async def test_every_line_is_json_and_only_internal_errors_are_errors(daemon: DaemonProcess) -> None:
    daemon.start()
    try:
        await daemon.wait_for(lambda: _true(bool(daemon.events("intake_ready"))), "the intake process")
        port = int(daemon.url.rsplit(":", 1)[1])
        answers = {name: await asyncio.to_thread(send, port, data, then) for name, (data, then) in HOSTILE.items()}
        provoked = {name: await asyncio.to_thread(send, port, request(AM, body, headers=BEARER), "answer")
                    for name, (body, _) in PROVOKED.items()}
        await daemon.wait_for(lambda: _true(len(_errors(daemon)) >= len(PROVOKED)), "the provoked errors")
    finally:
        code = daemon.terminate()
    assert code == 0

    assert answers["bad json"].startswith(b"HTTP/1.1 400") and answers["wrong bearer"].startswith(b"HTTP/1.1 401")
    assert provoked["handler"].startswith(b"HTTP/1.1 500")
    events = parsed(daemon.lines)
    assert {e["process"] for e in events} == {"core", "intake-1"}
    errors = [e for e in events if e["level"] in ("error", "critical")]
    assert sorted(message for e in errors for _, message in PROVOKED.values() if message in e.get("traceback", "")) \
        == sorted(message for _, message in PROVOKED.values()), errors  # each provoked error, and nothing else
    for error in errors:
        assert error["traceback"].startswith("Traceback (most recent call last):")
    loop_error = next(e for e in errors if "task nobody awaits" in e["traceback"])
    assert loop_error["logger"] == "asyncio" and "never retrieved" in loop_error["message"]
    client_caused = [e for e in events if e["event"] in ("client_request_malformed", "client_disconnected")]
    assert {e["event"] for e in client_caused} == {"client_request_malformed", "client_disconnected"}
    assert all("traceback" not in e and e["level"] in ("info", "warning") for e in client_caused)


def _errors(daemon: DaemonProcess) -> list[dict[str, Any]]:
    found = []
    for line in list(daemon.lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("level") == "error":
            found.append(event)
    return found


async def _true(value: bool) -> bool:
    return value
