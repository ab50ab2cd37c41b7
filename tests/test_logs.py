"""The log: JSON lines or text (LEADS_LOG_FORMAT), one line per request with its route and
request id, one per delivery attempt; and the X-Request-ID header, believed only from a
trusted proxy."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, make_settings, serving_app
from tests.servers import leads_process
from tests.support import eventually, leads_env

PROXY = "203.0.113.7"  # the address serving_app's client connects from


def service_env(tmp_path: Any, **settings: str) -> dict[str, str]:
    return leads_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}",
        secret_key=SECRET,
        rate_limit="off",
        tarpit_seconds="0",
        **settings,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


# -- X-Request-ID ---------------------------------------------------------------------------


async def test_a_trusted_proxys_request_id_is_kept_and_sent_back(database_url: str) -> None:
    settings = make_settings(database_url, trusted_proxies=f"{PROXY}/32")
    async with serving_app(settings) as client:
        kept = await client.get("/healthz", headers={"X-Request-ID": "edge-42:abc/DEF"})
        assert kept.headers["x-request-id"] == "edge-42:abc/DEF"
        longest = "x" * 128
        assert (await client.get("/healthz", headers={"X-Request-ID": longest})).headers[
            "x-request-id"
        ] == longest
        for bad in ("has space", "x" * 129, "tab\there", "é-accent".encode()):
            answer = await client.get("/healthz", headers={"X-Request-ID": bad})
            made = answer.headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", made), (bad, made)


async def test_an_untrusted_clients_request_id_is_replaced_on_every_response(
    database_url: str,
) -> None:
    async with serving_app(make_settings(database_url)) as client:
        answers = [
            await client.get("/healthz", headers={"X-Request-ID": "forged-by-visitor"}),
            await client.get("/no/such/page"),
            await client.post("/api/leads", json={"name": ""}),  # 422
            await client.get("/api/staff/leads"),  # 401
        ]
        ids = [answer.headers["x-request-id"] for answer in answers]
        assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in ids), ids
        assert len(set(ids)) == len(ids)
        assert [a.status_code for a in answers] == [200, 404, 422, 401]


# -- a real server's log ----------------------------------------------------------------------


@pytest.mark.slow
def test_json_lines_one_per_request_with_its_route_never_its_path(tmp_path: Any) -> None:
    env = service_env(tmp_path, log_format="json", log_level="info", trusted_proxies="127.0.0.1/32")
    lead_id = uuid.uuid4()
    with leads_process(env) as service:
        answer = httpx.get(
            f"{service.url}/api/staff/leads/{lead_id}?secret=q",
            headers={"X-Request-ID": "trace-me-1"},
        )
        assert answer.status_code == 401
        assert answer.headers["x-request-id"] == "trace-me-1"
        created = httpx.post(
            f"{service.url}/api/leads", json={"name": "Ann", "phone": "2025550143", "consent": True}
        )
        assert created.status_code == 201, created.text

        def delivered() -> list[dict[str, Any]] | None:
            found = [
                line
                for line in json_lines(service.output())
                if line.get("event") == "delivery" and line["outcome"] == "delivered"
            ]
            return found or None

        (delivery,) = _wait(delivered)
        output = service.output()
    lines = json_lines(output)  # every line is a JSON object
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
    requests = [line for line in lines if line.get("event") == "request"]
    (traced,) = [line for line in requests if line["request_id"] == "trace-me-1"]
    assert traced["method"] == "GET"
    assert traced["route"] == "/api/staff/leads/{lead_id}"
    assert traced["status"] == 401
    assert isinstance(traced["duration_ms"], float | int)
    assert str(lead_id) not in output  # uvicorn's access log is off: no path, no query
    assert "secret=q" not in output
    posted = [line for line in requests if line["route"] == "/api/leads"]
    assert [line["status"] for line in posted] == [201]
    assert (delivery["channel"], delivery["kind"]) == ("log", "lead.created")
    assert (delivery["level"], delivery["logger"]) == ("info", "leads.notify")
    assert uuid.UUID(delivery["message_id"])
    assert delivery["duration_ms"] >= 0


@pytest.mark.slow
def test_text_lines_say_the_same_events(tmp_path: Any) -> None:
    env = service_env(tmp_path, log_format="text", log_level="info")
    with leads_process(env) as service:
        answer = httpx.get(f"{service.url}/f/dry-needling")
        assert answer.status_code == 200
        request_id = answer.headers["x-request-id"]

        def logged() -> str | None:
            output = service.output()
            return output if request_id in output else None

        output = _wait(logged)
    (line,) = [line for line in output.splitlines() if request_id in line]
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z INFO leads\.http: GET /f/\{slug\} 200 ", line), line
    assert re.search(r" route=/f/\{slug\} status=200 duration_ms=[\d.]+$", line), line
    assert not any(line.startswith("{") for line in output.splitlines())
    assert "serving; the form is at" in output


@pytest.mark.slow
def test_auto_is_json_when_standard_error_is_not_a_terminal(tmp_path: Any) -> None:
    with leads_process(service_env(tmp_path, log_level="info")) as service:
        httpx.get(f"{service.url}/healthz")
        output = service.output()
    lines = json_lines(output)
    assert any("serving; the form is at" in line["message"] for line in lines)


def _wait(probe: Callable[[], Any]) -> Any:
    """``eventually`` for a synchronous probe (the server runs in another process)."""

    async def ask() -> Any:
        return probe()

    return asyncio.run(eventually(ask, what="the log line"))


async def test_a_page_on_an_allowed_origin_may_read_the_request_id(database_url: str) -> None:
    origin = "https://www.clinic.example"
    async with serving_app(make_settings(database_url, allowed_origins=origin)) as client:
        answer = await client.post("/api/leads", json={"name": ""}, headers={"Origin": origin})
    assert answer.status_code == 422
    exposed = answer.headers["access-control-expose-headers"].lower().split(", ")
    assert "x-request-id" in exposed
