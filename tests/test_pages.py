"""The hosted form, GET/POST /f/{slug}, through its HTTP interface on SQLite and PostgreSQL:
what a browser without JavaScript gets, field by field."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from leads.app import create_app
from tests.conftest import Query, make_settings, migrate

FORM = "/f/dry-needling"
HTML = {"accept": "text/html,application/xhtml+xml"}
CONTROLS = ("input", "select", "textarea")


@dataclass
class Page:
    """A parsed page: every element's attributes in document order, and its text."""

    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: str = ""

    @property
    def ids(self) -> dict[str, tuple[str, dict[str, str]]]:
        return {attrs["id"]: (tag, attrs) for tag, attrs in self.elements if "id" in attrs}

    def by_id(self, element_id: str) -> dict[str, str]:
        return self.ids[element_id][1]

    def all(self, tag: str, **match: str) -> list[dict[str, str]]:
        return [
            attrs
            for t, attrs in self.elements
            if t == tag and all(attrs.get(k) == v for k, v in match.items())
        ]

    def visible_controls(self) -> list[dict[str, str]]:
        return [
            attrs
            for tag, attrs in self.elements
            if tag in CONTROLS and attrs.get("type") != "hidden" and attrs.get("id") != "website"
        ]

    def hidden_fields(self) -> dict[str, str]:
        return {a["name"]: a.get("value", "") for a in self.all("input", type="hidden")}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def parse(response: httpx.Response) -> Page:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    parser = _Parser()
    parser.feed(response.text)
    parser.close()
    parser.page.text = " ".join(" ".join(parser.chunks).split())
    return parser.page


def visitor(**fields: str) -> dict[str, str]:
    """What a browser sends for a filled-in form (a ticked box sends its value, "true")."""
    body = {
        "form": "dry-needling",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "",
        "preferred_contact": "",
        "interest": "",
        "message": "",
        "website": "",
        "consent": "true",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def csp(response: httpx.Response) -> dict[str, list[str]]:
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


async def test_the_form_page_renders_without_anything_from_other_sites(client) -> None:
    response = await client.get(FORM, headers=HTML)
    assert response.status_code == 200
    page = parse(response)
    assert "<title>Learn more about dry needling</title>" in response.text
    assert page.all("h1")
    assert "Learn more about dry needling" in page.text
    assert "not for urgent medical questions" in page.text
    assert "emergency" in page.text
    assert response.headers["cache-control"] == "no-store"

    policy = csp(response)
    assert policy["default-src"] == ["'none'"]
    assert "script-src" not in policy  # no script at all: the page works without it
    for sources in policy.values():
        for source in sources:
            assert source in ("'self'", "'none'", "data:"), policy

    for tag, attrs in page.elements:
        for name in ("src", "href", "action", "srcset", "formaction"):
            if name in attrs:
                target = urlsplit(attrs[name])
                assert not target.scheme, (tag, attrs)
                assert not target.netloc, (tag, attrs)
    (stylesheet,) = page.all("link", rel="stylesheet")
    assert (await client.get(stylesheet["href"])).status_code == 200
    (form,) = page.all("form")
    assert form["method"] == "post"
    assert form["action"] == FORM


async def test_the_pages_link_our_own_icon_and_favicon_ico_answers_it(client) -> None:
    response = await client.get(FORM, headers=HTML)
    assert "'self'" in csp(response)["img-src"]  # the page's policy lets the icon load
    for path in (FORM, f"{FORM}/thanks", "/f/no-such-form"):
        (icon,) = parse(await client.get(path, headers=HTML)).all("link", rel="icon")
        assert icon["href"] == "/static/favicon.svg", path
        assert icon["type"] == "image/svg+xml"
    linked = await client.get("/static/favicon.svg")
    assert linked.status_code == 200
    assert linked.headers["content-type"].startswith("image/svg+xml")
    assert linked.text.startswith("<svg")

    # Browsers still ask for /favicon.ico on every page: the same icon, kept for a day.
    favicon = await client.get("/favicon.ico")
    assert favicon.status_code == 200
    assert favicon.headers["content-type"].startswith("image/")
    assert favicon.headers["cache-control"] == "public, max-age=86400"
    assert favicon.content == linked.content
    assert len(favicon.content) < 1024
    assert (await client.head("/favicon.ico")).status_code == 200


async def test_every_field_has_a_label_and_required_ones_say_so(client) -> None:
    page = parse(await client.get(FORM))
    labelled = {attrs["for"] for attrs in page.all("label")}
    controls = page.visible_controls()
    assert {c["id"] for c in controls} >= {"name", "email", "phone", "message", "consent"}
    for control in controls:
        assert control["id"] in labelled, control
    # "(required)" sits inside the labels of the two required fields.
    html = (await client.get(FORM)).text
    for field_id in ("name", "consent"):
        label = html.split(f'<label for="{field_id}">', 1)[1].split("</label>", 1)[0]
        assert "(required)" in label
    assert "email or phone, at least one" in page.text
    # The honeypot is out of the tab order and hidden from assistive technology.
    assert page.by_id("website")["tabindex"] == "-1"


async def test_an_unknown_form_is_a_404_page(client) -> None:
    response = await client.get("/f/no-such-form", headers=HTML)
    assert response.status_code == 404
    page = parse(response)
    assert "There is no form at this address" in page.text
    assert "call the clinic" in page.text

    posted = await client.post("/f/no-such-form", data=visitor(), headers=HTML)
    assert posted.status_code == 404


async def test_a_filled_form_is_stored_then_303_to_the_thank_you_page(client, query) -> None:
    response = await client.post(
        FORM,
        data=visitor(
            name="  Ann Smith ",
            email="Ann@EXAMPLE.com",
            phone="(202) 555-0143",
            preferred_contact="text",
            interest="Lower back pain",
            message="It hurts\r\nwhen I sit.",
        ),
        headers={"referer": "http://testserver/f/dry-needling", "user-agent": "Phone/1.0"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/f/dry-needling/thanks"
    rows = await query("SELECT * FROM leads")
    assert len(rows) == 1
    row = rows[0]
    assert row["form"] == "dry-needling"
    assert row["name"] == "Ann Smith"
    assert row["email"] == "Ann@example.com"
    assert row["phone"] == "+12025550143"
    assert row["preferred_contact"] == "text"
    assert row["interest"] == "Lower back pain"
    assert row["message"] == "It hurts\nwhen I sit."
    assert row["consent_version"].startswith("sha256:")
    assert "contact me about my enquiry" in row["consent_text"]
    assert row["user_agent"] == "Phone/1.0"
    assert not row["spam"]

    thanks = await client.get(response.headers["location"], headers=HTML)
    assert thanks.status_code == 200
    assert "Thank you" in parse(thanks).text
    assert "'none'" in thanks.headers["content-security-policy"]


async def test_a_ticked_box_sent_as_on_counts_as_consent(client, query) -> None:
    response = await client.post(FORM, data=visitor(consent="on"))
    assert response.status_code == 303
    assert len(await query("SELECT id FROM leads")) == 1


async def test_multipart_works_like_urlencoded(client, query) -> None:
    parts = {name: (None, value) for name, value in visitor(name="Multi Part").items()}
    response = await client.post(FORM, files=parts)
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 303
    assert [r["name"] for r in await query("SELECT name FROM leads")] == ["Multi Part"]


async def test_invalid_utf8_in_a_form_post_is_400_as_in_json(client, query) -> None:
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    body = "name=%ff%fe&email=ann%40example.com&consent=on"
    answer = await client.post(FORM, content=body, headers=urlencoded)
    assert answer.status_code == 400
    assert answer.json()["code"] == "malformed_body"
    as_json = await client.post(
        "/api/leads",
        content=b'{"name": "\xff\xfe", "email": "ann@example.com", "consent": true}',
        headers={"content-type": "application/json"},
    )
    assert (as_json.status_code, as_json.json()["code"]) == (400, "malformed_body")

    boundary = "leadsboundary"
    fields = {"name": b"Ann \xff\xfe", "email": b"ann@example.com", "consent": b"on"}
    multipart = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
            for name, value in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    answer = await client.post(
        FORM,
        content=multipart,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "malformed_body"

    page = await client.post(FORM, content=body, headers={**urlencoded, **HTML})
    assert page.status_code == 400  # a browser gets the error page
    assert page.headers["content-type"].startswith("text/html")
    assert await query("SELECT id FROM leads") == []


async def test_thank_you_url_comes_from_the_forms_file(make_client, tmp_path, query) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(
        '[forms.back-pain]\ntitle = "Help with back pain"\n'
        'intro = "Tell us where it hurts."\n'
        'interests = ["Sciatica", "Stiffness"]\n'
        'consent = "You may phone or email me about this."\n'
        'thank_you_url = "https://clinic.example/thanks"\n',
        encoding="utf-8",
    )
    client = await make_client(forms_file=forms)

    page_response = await client.get("/f/back-pain")
    assert page_response.status_code == 200
    page = parse(page_response)
    assert "Help with back pain" in page.text
    assert "Tell us where it hurts." in page.text
    assert "You may phone or email me about this." in page.text
    assert len(page.all("option")) == 3
    assert "Sciatica" in page.text
    assert csp(page_response)["form-action"] == ["'self'", "https://clinic.example"]
    assert (await client.get(FORM)).status_code == 200  # the built-in form is still there

    response = await client.post(
        "/f/back-pain", data=visitor(form="back-pain", interest="Sciatica")
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://clinic.example/thanks"
    (row,) = await query("SELECT form, interest, consent_text FROM leads")
    assert row == {
        "form": "back-pain",
        "interest": "Sciatica",
        "consent_text": "You may phone or email me about this.",
    }


async def test_errors_come_back_beside_their_fields_with_the_input_kept(client, query) -> None:
    message = '<script>alert("hi")</script> & my knee'
    response = await client.post(
        FORM,
        data=visitor(
            name="",
            email="ada@",
            phone="202 555 0143",
            preferred_contact="phone",
            interest="Headaches",
            message=message,
            consent=None,
        ),
    )
    assert response.status_code == 422
    assert response.headers["cache-control"] == "no-store"
    page = parse(response)
    assert "<title>Error: Learn more about dry needling</title>" in response.text

    # The visitor's input is all still there, and escaped.
    assert page.by_id("email")["value"] == "ada@"
    assert page.by_id("phone")["value"] == "202 555 0143"
    assert "checked" in page.by_id("preferred_contact-phone")
    assert "checked" not in page.by_id("preferred_contact-any")
    assert page.all("option", selected="") == [{"selected": ""}]
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt; &amp; my knee" in response.text
    assert message in page.text
    assert "checked" not in page.by_id("consent")

    # Each bad field is marked and described by an error that exists; good ones are not.
    for field_id in ("name", "email", "consent"):
        control = page.by_id(field_id)
        assert control["aria-invalid"] == "true", field_id
        described = control["aria-describedby"].split()
        assert f"{field_id}-error" in described
        for ref in described:
            assert ref in page.ids, ref
    assert "Please tell us your name." in page.text
    assert "email address like name@example.com" in page.text
    assert "tick the box" in page.text
    for field_id in ("phone", "message"):
        control = page.by_id(field_id)
        assert "aria-invalid" not in control
        assert control["aria-describedby"] == f"{field_id}-hint"
    assert "phone-error" not in page.ids

    # The summary comes first, is announced, takes focus, and links to every bad field.
    summary = page.by_id("error-summary")
    assert summary["role"] == "alert"
    assert summary["tabindex"] == "-1"
    assert "autofocus" in summary
    links = [a["href"] for a in page.all("a")]
    assert links == ["#name", "#email", "#consent"]
    for href in links:
        assert href[1:] in page.ids
    assert await query("SELECT id FROM leads") == []


async def test_the_summary_names_each_field_once(client) -> None:
    response = await client.post(FORM, data=visitor(email="", phone="", preferred_contact=""))
    assert response.status_code == 422
    page = parse(response)
    # Both contact fields are marked, but the summary asks once, pointing at the first.
    assert page.by_id("email")["aria-invalid"] == "true"
    assert page.by_id("phone")["aria-invalid"] == "true"
    assert [a["href"] for a in page.all("a")] == ["#email"]
    assert page.text.count("Please give an email address or a phone number.") == 3


async def test_a_missing_phone_for_a_text_is_explained_in_the_summary(client) -> None:
    response = await client.post(FORM, data=visitor(preferred_contact="text"))
    assert response.status_code == 422
    page = parse(response)
    assert [a["href"] for a in page.all("a")] == ["#phone"]
    summary_text = response.text.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    # "Please add this" alone would not say what "this" is.
    assert "Phone number" in summary_text
    assert page.by_id("phone")["aria-describedby"] == "phone-hint phone-error"


async def test_honeypot_looks_like_success_and_is_stored_as_spam(client, query) -> None:
    response = await client.post(FORM, data=visitor(website="http://spam.example"))
    assert response.status_code == 303
    assert response.headers["location"] == "/f/dry-needling/thanks"
    assert await query("SELECT spam, spam_reason FROM leads") == [
        {"spam": True, "spam_reason": "honeypot"}
    ]


async def test_json_is_not_accepted_by_the_form(client, query) -> None:
    response = await client.post(FORM, json=visitor())
    assert response.status_code == 415
    assert await query("SELECT id FROM leads") == []


async def test_a_body_over_the_limit_is_413(make_client, query) -> None:
    client = await make_client(max_body_bytes=1000)
    response = await client.post(FORM, data=visitor(message="x" * 1500), headers=HTML)
    assert response.status_code == 413
    page = parse(response)
    assert "shorten your message" in page.text
    assert await query("SELECT id FROM leads") == []


async def test_utm_parameters_become_hidden_fields_and_are_stored(client, query) -> None:
    response = await client.get(
        f"{FORM}?utm_source=newsletter&utm_medium=email&utm_campaign=spring%20offer"
        "&utm_term=knee&utm_content=button&other=ignored",
        headers={"referer": "https://clinic.example/dry-needling"},
    )
    page = parse(response)
    hidden = page.hidden_fields()
    token = hidden.pop("form_token")
    assert len(token) == 36  # the time trap's signed token
    assert hidden == {
        "form": "dry-needling",
        "page_url": str(response.url),
        "referrer": "https://clinic.example/dry-needling",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring offer",
        "utm_term": "knee",
        "utm_content": "button",
    }

    # The browser sends the hidden fields back with what the visitor typed.
    posted = await client.post(FORM, data={**hidden, **visitor()})
    assert posted.status_code == 303
    (row,) = await query(
        "SELECT page_url, referrer, utm_source, utm_medium, utm_campaign, utm_term, "
        "utm_content FROM leads"
    )
    assert row == {k: v for k, v in hidden.items() if k != "form"}

    # And they survive a round with errors.
    again = parse(await client.post(FORM, data={**hidden, "form_token": token, **visitor(name="")}))
    # ...the token too: fixing a mistake does not restart the time trap's clock.
    assert again.hidden_fields() == {**hidden, "form_token": token}


async def test_unusable_tracking_values_never_block_a_visitor(client, query) -> None:
    # A link with a newline in a utm value, or one far too long: the visitor cannot see or
    # fix hidden fields, so they are dropped rather than reported.
    response = await client.get(f"{FORM}?utm_source=a%0Ab&utm_medium={'m' * 600}")
    hidden = parse(response).hidden_fields()
    assert "utm_source" not in hidden
    assert len(hidden.get("utm_medium", "")) <= 500
    posted = await client.post(
        FORM, data={**hidden, **visitor(), "utm_campaign": "x\ny", "utm_term": "t" * 600}
    )
    assert posted.status_code == 303, parse(posted).text
    (row,) = await query("SELECT utm_source, utm_campaign, utm_term FROM leads")
    assert row == {"utm_source": None, "utm_campaign": None, "utm_term": "t" * 500}


async def test_a_locked_database_is_503_with_the_form_and_input_kept(tmp_path: Path) -> None:
    database_path = tmp_path / "locked.db"
    settings = make_settings(f"sqlite+aiosqlite:///{database_path}", database_timeout_seconds=0.3)
    await migrate(settings)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        holder = sqlite3.connect(database_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            response = await client.post(FORM, data=visitor(message="My shoulder, mostly."))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        page = parse(response)
        assert "could not send your request" in page.text
        assert "still below" in page.text
        assert page.by_id("name")["value"] == "Ada Lovelace"
        assert page.by_id("email")["value"] == "ada@example.com"
        assert "My shoulder, mostly." in page.text
        assert "checked" in page.by_id("consent")
        assert "autofocus" in page.by_id("error-summary")

        retry = await client.post(FORM, data=visitor(message="My shoulder, mostly."))
        assert retry.status_code == 303


async def test_the_posted_form_field_cannot_switch_forms(client, query: Query) -> None:
    response = await client.post(FORM, data=visitor(form="something-else"))
    assert response.status_code == 303
    assert await query("SELECT form FROM leads") == [{"form": "dry-needling"}]


CLINIC = {
    "clinic_name": "Northside Physio",
    "clinic_phone": "(202) 555-0123",
    "clinic_url": "https://northside.example/",
}


def tel_links(page: Page) -> list[str]:
    return [a["href"] for a in page.all("a") if a.get("href", "").startswith("tel:")]


async def test_without_an_identity_the_pages_say_the_clinic_and_link_nowhere(client) -> None:
    form_page = parse(await client.get(FORM, headers=HTML))
    thanks_page = parse(await client.get(f"{FORM}/thanks", headers=HTML))
    error_page = parse(await client.get("/f/no-such-form", headers=HTML))
    for page in (form_page, thanks_page, error_page):
        assert "call the clinic," in page.text
        assert tel_links(page) == []
        assert not [a for a in page.all("a") if a.get("href", "").startswith("http")]
    assert "What would you like help with?" in form_page.text


async def test_the_pages_name_the_clinic_link_its_phone_and_lead_back_to_its_site(
    make_client,
) -> None:
    client = await make_client(**CLINIC)
    form_page = parse(await client.get(FORM, headers=HTML))
    assert "If you need help now, call Northside Physio on (202) 555-0123" in form_page.text
    assert tel_links(form_page) == ["tel:+12025550123"]

    thanks_page = parse(await client.get(f"{FORM}/thanks", headers=HTML))
    assert "please call Northside Physio on (202) 555-0123" in thanks_page.text
    assert tel_links(thanks_page) == ["tel:+12025550123"]
    (back,) = thanks_page.all("a", href="https://northside.example/")
    assert "Back to the Northside Physio website" in thanks_page.text
    assert back["class"] == "back-link"

    # A form that does not exist has no identity of its own: the settings' one.
    error_page = parse(await client.get("/f/no-such-form", headers=HTML))
    assert "go back to the Northside Physio website" in error_page.text
    assert "please call Northside Physio on (202) 555-0123 instead" in error_page.text
    assert tel_links(error_page) == ["tel:+12025550123", "tel:+12025550123"]
    assert error_page.all("a", href="https://northside.example/")


async def test_a_busy_form_says_whom_to_call(make_client, tmp_path: Path) -> None:
    database_path = tmp_path / "busy.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{database_path}", database_timeout_seconds=0.3, **CLINIC
    )
    await migrate(settings)
    app = create_app(settings)
    lock = sqlite3.connect(database_path, isolation_level=None)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                lock.execute("BEGIN IMMEDIATE")
                response = await c.post(FORM, data=visitor(), headers=HTML)
                lock.execute("ROLLBACK")
    finally:
        lock.close()
    assert response.status_code == 503
    page = parse(response)
    assert "again then, or call Northside Physio on (202) 555-0123" in page.text
    assert len(tel_links(page)) == 2


async def test_a_form_in_the_forms_file_speaks_for_its_own_clinic(
    make_client, tmp_path: Path
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(
        '[forms.back-pain]\ntitle = "Back pain"\ninterests = ["Sciatica"]\n'
        'interest_label = "Where does it hurt?"\n'
        'clinic_name = "Southside Backs"\nclinic_phone = "+44 20 7946 0018"\n'
        'clinic_url = "https://southside.example/contact?from=leads&x=1"\n'
        '[forms.neck]\ntitle = "Neck pain"\nclinic_name = "Neck Clinic"\n',
        encoding="utf-8",
    )
    client = await make_client(forms_file=forms, **CLINIC)
    page = parse(await client.get("/f/back-pain", headers=HTML))
    assert "call Southside Backs on +44 20 7946 0018" in page.text
    assert tel_links(page) == ["tel:+442079460018"]
    assert "Where does it hurt?" in page.text
    assert "What would you like help with?" not in page.text

    thanks = await client.get("/f/back-pain/thanks", headers=HTML)
    assert 'href="https://southside.example/contact?from=leads&amp;x=1"' in thanks.text
    assert "Back to the Southside Backs website" in parse(thanks).text

    # Only the name is the form's own: the phone and site are the settings'.
    neck = parse(await client.get("/f/neck/thanks", headers=HTML))
    assert "please call Neck Clinic on (202) 555-0123" in neck.text
    assert neck.all("a", href="https://northside.example/")
    # The built-in form keeps the settings' identity.
    built_in = parse(await client.get(FORM, headers=HTML))
    assert "call Northside Physio on (202) 555-0123" in built_in.text


async def test_a_clinic_name_is_text_on_every_page(make_client) -> None:
    client = await make_client(
        clinic_name='Ann & <b>Bo</b> "Physio"', clinic_url="https://clinic.example/?a=1&b=<2>"
    )
    for path in (FORM, f"{FORM}/thanks", "/f/no-such-form"):
        response = await client.get(path, headers=HTML)
        assert "<b>" not in response.text
        assert "Ann &amp; &lt;b&gt;Bo&lt;/b&gt; &#34;Physio&#34;" in response.text, path
        assert 'call Ann & <b>Bo</b> "Physio",' in parse(response).text
    thanks = await client.get(f"{FORM}/thanks", headers=HTML)
    assert 'href="https://clinic.example/?a=1&amp;b=&lt;2&gt;"' in thanks.text
