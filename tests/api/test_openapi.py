"""``/openapi.json`` describes exactly the routes registered, and the proxy keeps to it
(schemathesis against a live proxy on simulated providers, issue 18 acceptance 5)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from router.api.openapi import DOCUMENT, PATHS
from tests.conftest import ALICE, RunningProxy


def registered(proxy: RunningProxy) -> set[tuple[str, str]]:
    """(method, path template) of every route, less HEAD twins and the catch-all."""
    routes = set()
    for route in proxy.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if route.method in ("HEAD", "*") or path is None:
            continue
        routes.add((route.method.lower(), str(path)))
    return routes


async def test_the_document_names_exactly_the_registered_routes(proxy: RunningProxy) -> None:
    described = {(method, path) for path, operations in PATHS.items() for method in operations}
    assert described == registered(proxy)


async def test_the_document_is_served_without_a_key(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/openapi.json") as response:
        assert response.status == 200
        assert await response.json() == DOCUMENT
    assert DOCUMENT["openapi"].startswith("3.1")


# What schemathesis holds every answer to: never a 5xx, a documented status, the documented
# content type, and a body that matches the documented schema.
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.timeout(120)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    proxy: RunningProxy, tmp_path: Path
) -> None:
    """A bounded run (fixed seed, a few examples per operation, a time cap) over every
    operation, including the negative cases of its coverage phase."""
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{proxy.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ALICE}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        "--seed",
        "18",
        "--max-time",
        "45",
        "--request-timeout",
        "10",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,  # schemathesis keeps a cache in the working directory
    )
    output, _ = await run.communicate()
    text = output.decode(errors="replace")
    assert run.returncode == 0, text[-6000:]
    assert "generated" in text and "passed" in text
