"""docs/openapi.yaml: a valid OpenAPI 3.1 document that describes exactly the routes the app registers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from aiohttp import web

from remediator.daemon.app import build_listeners
from remediator.settings import Settings
from tests.conftest import ROOT

DOCUMENT = ROOT / "docs" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
PARAMETER = re.compile(r"\{[^}]+\}")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def apps(make_settings: Callable[..., Settings]) -> dict[int, web.Application]:
    """The core's listeners, by their default port (the port in the document's `servers`)."""
    settings = make_settings()
    listeners = build_listeners(settings)
    return {settings.listen.port: listeners.public, settings.admin_listen.port: listeners.admin}


def routes(app: web.Application) -> list[tuple[str, web.AbstractResource]]:
    return [(route.method.lower(), route.resource) for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None]


def listeners_of(document: dict[str, Any], item: dict[str, Any]) -> set[int]:
    """The ports of the listeners a path item says it is served on (the document's servers by default)."""
    return {int(str(server["url"]).rsplit(":", 1)[1]) for server in item.get("servers", document["servers"])}


def documented(document: dict[str, Any], port: int | None = None) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document["paths"].items() for method in item if method in METHODS
            and (port is None or port in listeners_of(document, item))]


def serves(resource: web.AbstractResource, path: str) -> bool:
    """Whether the app's resource answers a documented path (its parameters filled with a sample)."""
    sample = PARAMETER.sub("X-1", path)
    info = resource.get_info()
    if "pattern" in info:
        return info["pattern"].fullmatch(sample) is not None
    return bool(info.get("path") == path)


def test_it_is_a_valid_openapi_31_document(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_every_route_a_listener_registers_is_documented_on_that_listener(
    apps: dict[int, web.Application], document: dict[str, Any]
) -> None:
    for port, app in apps.items():
        paths = documented(document, port)
        missing = [(method, resource.canonical) for method, resource in routes(app)
                   if not any(m == method and serves(resource, p) for m, p in paths)]
        assert not missing, f"routes of the listener on {port} missing from {DOCUMENT.name}: {missing}"


def test_everything_documented_is_served_by_the_listener_it_names(
    apps: dict[int, web.Application], document: dict[str, Any]
) -> None:
    assert {port for item in document["paths"].values() for port in listeners_of(document, item)} == set(apps)
    for port, app in apps.items():
        served = routes(app)
        phantom = [(m, p) for m, p in documented(document, port)
                   if not any(method == m and serves(resource, p) for method, resource in served)]
        assert not phantom, f"documented on the listener on {port} but not served there: {phantom}"


def test_each_incident_command_is_its_own_documented_path(apps: dict[int, web.Application],
                                                         document: dict[str, Any]) -> None:
    (command,) = [r for app in apps.values() for m, r in routes(app)
                  if r.canonical == "/api/v1/incidents/{id}/{action}"]
    commands = sorted(p.rsplit("/", 1)[1] for m, p in documented(document) if m == "post" and serves(command, p))
    assert commands == ["acknowledge", "checklist", "close", "notes", "phase", "postmortem-fields",
                        "prevention-actions", "roles", "root-cause"]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_json_errors_use_the_error_body_and_the_api_names_its_auth(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "detail"]
    for name, response in document["components"]["responses"].items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if name != "Readiness":
            assert schema == {"$ref": "#/components/schemas/Error"}, name
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    for method, path, operation in _operations(document):
        if path.startswith("/api/"):
            assert {"apiToken": []} in operation.get("security", []), (method, path)
            assert "401" in operation["responses"], (method, path)
        if method == "post" and path.startswith("/api/"):
            assert {} not in operation["security"], f"{path}: writing always needs a token"


def test_no_key_is_a_sentence_cut_by_a_colon(document: dict[str, Any]) -> None:
    # An unquoted "summary: Liveness: ..." silently becomes a nested mapping in YAML, and an unquoted
    # comma in a flow mapping a key without a value.
    def keys(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if (" " in str(key) and not str(key).startswith("/")) or value is None:
                    yield f"{where}.{key}"
                yield from keys(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from keys(value, f"{where}[{index}]")

    assert not list(keys(document, "$"))
