"""/openapi.json: a valid OpenAPI 3.1 document that describes every API route, and that a
live `leads serve` keeps, by schemathesis with all of its checks (tests/openapi_formats.py
gives it the values of the formats JSON Schema cannot spell out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import Route

from leads.app import create_app
from tests.conftest import SECRET, make_settings
from tests.servers import running_service
from tests.support import leads_cli

HOOKS = Path(__file__).parent / "openapi_formats.py"
# Answers that depend on what is stored, not on the request's shape: a PATCH whose If-Match
# is no longer current (412), or that names someone who has no account (422), a merge into
# a lead that is not there (422). Everywhere else a valid request must be taken.
CONFIG = """
[[operations]]
include-operation-id = "patchLead"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "412", "422"]

[[operations]]
include-operation-id = "mergeLead"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


async def test_the_document_is_openapi_3_1_and_describes_every_api_route(
    client: httpx.AsyncClient, database_url: str
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    jsonschema_rs.validator_for(OPENAPI_31).validate(document)

    app = create_app(make_settings(database_url))
    routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")]
    assert routes
    for route in routes:
        assert route.path in document["paths"], route.path
        described = {method.upper() for method in document["paths"][route.path]}
        assert (route.methods or set()) - {"HEAD"} <= described, route.path
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], f"{method} {path}"
            if path.startswith("/api/staff/"):
                assert operation["security"], f"{method} {path}: no security"


async def test_the_document_names_the_forms_of_this_server(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    slug = document["paths"]["/f/{slug}"]["get"]["parameters"][0]
    assert slug["schema"]["enum"] == ["dry-needling"]
    submission = document["components"]["schemas"]["Submission"]
    assert submission["required"] == ["name", "consent"]
    assert submission["properties"]["name"]["maxLength"] == 100


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_a_live_server(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.fail("schemathesis is a test dependency: pip install -e '.[test]'")
    database = f"sqlite:///{tmp_path / 'leads.db'}"
    assert leads_cli(database, "migrate").returncode == 0
    made = leads_cli(database, "token", "create", "--name", "fuzz", "--scope", "write")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {
        "LEADS_DATABASE_URL": database,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_MIN_FILL_SECONDS": "0",
        "LEADS_TARPIT_SECONDS": "0",
        "LEADS_LOG_LEVEL": "warning",
    }
    with running_service(env) as base:
        run = subprocess.run(
            [
                st,
                "--config-file",
                str(config),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "30",
                "--max-redirects",
                "0",
                "--workers",  # one: CPython 3.11 can fail compiling in threads (SystemError)
                "1",
                "--seed",
                "1",
                "--header",
                f"Authorization: Bearer {token}",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "NO_COLOR": "1"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
