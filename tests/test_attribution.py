"""Where a submission came from, when a site's own form does not say: the Referer."""

from __future__ import annotations

from tests.conftest import Query

PAGE = "https://www.clinic.example/dry-needling.html"


async def test_a_json_post_without_page_url_takes_the_referer(client, lead, query: Query) -> None:
    referer = f"{PAGE}?utm_source=flyer&utm_campaign=spring&session=abc123&email=x%40y.z"
    response = await client.post("/api/leads", json=lead(), headers={"Referer": referer})
    assert response.status_code == 201
    (row,) = await query("SELECT page_url, utm_source, utm_campaign, utm_medium FROM leads")
    assert row == {
        "page_url": PAGE,
        "utm_source": "flyer",
        "utm_campaign": "spring",
        "utm_medium": None,
    }
    stored = " ".join(str(v) for v in (await query("SELECT * FROM leads"))[0].values())
    assert "abc123" not in stored  # nothing else of the query is kept
    assert "x@y.z" not in stored


async def test_what_the_page_sent_wins_over_the_referer(client, lead, query: Query) -> None:
    body = lead(page_url="https://www.clinic.example/own", utm_source="newsletter")
    headers = {"Referer": f"{PAGE}?utm_source=flyer&utm_medium=print"}
    assert (await client.post("/api/leads", json=body, headers=headers)).status_code == 201
    (row,) = await query("SELECT page_url, utm_source, utm_medium FROM leads")
    # The page named itself: its Referer adds nothing.
    assert row == {"page_url": "https://www.clinic.example/own", "utm_source": "newsletter",
                   "utm_medium": None}  # fmt: skip


async def test_a_plain_html_form_post_keeps_its_page_and_campaign(client, query: Query) -> None:
    """A clinic's own HTML form posting to the hosted form's address, with no hidden fields."""
    fields = {"name": "Ann Smith", "email": "ann@example.com", "consent": "on"}
    headers = {"Referer": f"{PAGE}?utm_source=flyer"}
    response = await client.post("/f/dry-needling", data=fields, headers=headers)
    assert response.status_code == 303
    (row,) = await query("SELECT page_url, utm_source FROM leads")
    assert row == {"page_url": PAGE, "utm_source": "flyer"}


async def test_an_unusable_referer_is_ignored(client, lead, query: Query) -> None:
    for referer in ("javascript:alert(1)", "not a url", "https://", "ftp://x.example/a"):
        response = await client.post("/api/leads", json=lead(), headers={"Referer": referer})
        assert response.status_code == 201, referer
    rows = await query("SELECT page_url FROM leads")
    assert rows == [{"page_url": None}] * 4
