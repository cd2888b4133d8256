"""The circuit breaker's circuits: read them (viewer), close one (admin). See guardrails/circuit.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from remediator.errors import BadRequest, CoordinationUnavailable
from remediator.guardrails.circuit import circuit_key
from remediator.observability import get_logger
from remediator.settings import CircuitBreakerSettings
from remediator.stores.circuits import Circuit
from remediator.web.bodies import read_body
from remediator.web.common import authorize, error_response, json_response
from remediator.web.keys import DEPS

log = get_logger("remediator.api")


def circuit_view(circuit: Circuit, settings: CircuitBreakerSettings, now: datetime) -> dict[str, Any]:
    action, _, target = circuit.key.partition(":")
    closes = circuit.opened_at + settings.cool_off if circuit.opened_at is not None else None
    return {"action": action, "target": target, "failures": circuit.failures, "reason": circuit.reason,
            "last_failure_at": circuit.last_failure_at.isoformat(),
            "state": "closed" if closes is None else ("open" if now < closes else "half_open"),
            "opened_at": circuit.opened_at.isoformat() if circuit.opened_at else None,
            "closes_at": closes.isoformat() if closes else None}


async def list_circuits(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        found = await deps.coordination.circuits()
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    settings, now = deps.settings.guardrails.circuit_breaker, deps.clock.now()
    return json_response({"threshold": settings.failures, "cool_off_seconds": settings.cool_off.total_seconds(),
                          "circuits": [circuit_view(c, settings, now) for c in found]})


def _close_request(body: bytes) -> tuple[str, str, str]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(400, "malformed_json", "the body is not JSON") from None
    fields = [payload.get(k) if isinstance(payload, dict) else None for k in ("action", "target", "reason")]
    if not all(isinstance(f, str) and 0 < len(f) <= 500 for f in fields):
        raise BadRequest(400, "invalid_payload", 'expected {"action": "...", "target": "...", "reason": "..."} '
                                                 "(each 1 to 500 characters)")
    return str(fields[0]), str(fields[1]), str(fields[2])


async def close_circuit(request: web.Request) -> web.Response:
    """A person closes a circuit: the action type is tried on the target again (each request still guarded)."""
    deps = request.app[DEPS]
    try:
        who = authorize(request, deps.settings.api, "admin")
        action, target, reason = _close_request(await read_body(request, 16 * 1024))
        closed = await deps.coordination.close_circuit(circuit_key(action, target))
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    if not closed:
        return json_response({"error": "not_found", "detail": f"no failures are counted for {action} on {target}"},
                             404)
    log.warning("circuit_closed", action=action, target=target, by=who, reason=reason)
    return json_response({"action": action, "target": target, "closed": True, "by": who, "reason": reason})
