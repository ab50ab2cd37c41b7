"""Keep the docs true: the README's two commands and its configuration tables, the settings
and error codes the docs name, and the example forms files they show."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from leads.abuse.defaults import built_in_rules
from leads.core.forms import load_forms
from leads.notify.channels.webhook import WebhookChannel
from leads.notify.content import webhook_payload
from leads.settings import GROUPS, Settings
from leads.settings.abuse import AbuseSettings
from leads.settings.clinic import ClinicSettings
from leads.settings.intake import IntakeSettings
from leads.settings.notifications import NotificationSettings
from leads.settings.server import ServerSettings
from leads.settings.sms import SmsSettings
from leads.settings.storage import StorageSettings
from leads.storage.models import Enquiry, Lead, OutboxMessage
from tests.support import leads_env, run_leads

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str, language: str | None = None) -> list[str]:
    """The contents of the fenced code blocks, optionally only those tagged ``language``."""
    blocks = []
    for match in FENCE.finditer(text):
        tag = match.group(0).split("\n", 1)[0].removeprefix("```").strip()
        if language is None or tag == language:
            blocks.append(match.group(1))
    return blocks


def quick_start_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in fenced_blocks(section)]


def test_readme_opens_with_the_quick_start() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert lines[0] == "# leads"
    assert headings[:2] == ["# leads", "## Quick start"]


def test_quick_start_is_exactly_the_two_commands() -> None:
    assert quick_start_commands() == ["bash scripts/serve", "bash scripts/test"]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = quick_start_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert any(line == test_command or line.startswith(test_command + " ") for line in ci_lines)


# Variables the tests read, not the service: which tests run, and for how long.
TEST_SWITCHES = {"LEADS_LONG_TESTS", "LEADS_SOAK_SECONDS", "LEADS_SOAK_RATE"}


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_every_setting_named_in_the_docs_exists(path: Path) -> None:
    real = {f"LEADS_{name.upper()}" for name in Settings.model_fields} | TEST_SWITCHES
    named = set(re.findall(r"\bLEADS_[A-Z][A-Z0-9_]*", path.read_text(encoding="utf-8")))
    assert named - real == set(), f"{path.name} names settings that do not exist"


# README.md's configuration: one table per group of settings, built from the fields.

# The README's heading for each group of settings, in the order of leads.settings.GROUPS.
GROUP_HEADINGS = {
    StorageSettings: "Storage",
    IntakeSettings: "Intake",
    ServerSettings: "Server and connections",
    AbuseSettings: "Spam and abuse",
    NotificationSettings: "Notifications",
    ClinicSettings: "The clinic",
    SmsSettings: "Texts to the front desk",
}


def default_text(value: object) -> str:
    if value is None:
        return "(not set)"
    if value == ():
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def configuration_markdown() -> str:
    """The README's configuration tables, as the settings' fields describe them."""
    parts = []
    for group in GROUPS:
        rows = [f"### {GROUP_HEADINGS[group]}", "", "| Setting | Default | Description |"]
        rows.append("| --- | --- | --- |")
        for name, field in group.model_fields.items():
            default = default_text(field.default)
            rows.append(f"| `LEADS_{name.upper()}` | {default} | {field.description} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def configuration_tables(readme: str) -> str:
    """The text of the README's configuration section from its first ``###`` heading up to
    the first line after that which is neither a heading, a table row nor blank."""
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("### "))
    kept: list[str] = []
    for line in lines[first:]:
        if not (line.startswith(("### ", "|")) or line == ""):
            break
        kept.append(line)
    return "\n".join(kept).strip() + "\n"


def test_the_readme_configuration_is_the_settings_descriptions() -> None:
    assert list(GROUP_HEADINGS) == list(GROUPS)
    expected = configuration_markdown()
    found = configuration_tables(README.read_text(encoding="utf-8"))
    assert found == expected, f"README.md's configuration tables should read:\n\n{expected}"


def test_the_configuration_tables_cover_every_setting_once() -> None:
    names = re.findall(r"^\| `(LEADS_[A-Z0-9_]+)` \|", configuration_markdown(), re.MULTILINE)
    assert sorted(names) == sorted(f"LEADS_{name.upper()}" for name in Settings.model_fields)
    assert len(names) == len(set(names))


def test_the_table_reader_stops_where_the_tables_end() -> None:
    readme = (
        "# leads\n\n## Configuration\n\nSome words.\n\n### A\n\n"
        "| Setting | Default | Description |\n| --- | --- | --- |\n| `LEADS_A` | x | a |\n\n"
        "### B\n\n| `LEADS_B_C` | | b |\n\nNotes.\n\n| `LEADS_NOT_HERE` | | |\n"
        "\n## Deployment\n"
    )
    assert configuration_tables(readme) == (
        "### A\n\n| Setting | Default | Description |\n| --- | --- | --- |\n"
        "| `LEADS_A` | x | a |\n\n### B\n\n| `LEADS_B_C` | | b |\n"
    )


def documented_error_codes() -> set[str]:
    """Backticked values in every column headed Code (or `code`) of docs/api.md's tables."""
    lines = (ROOT / "docs/api.md").read_text(encoding="utf-8").splitlines()
    codes: set[str] = set()
    columns: list[int] = []
    for number, line in enumerate(lines):
        if not line.startswith("|"):
            columns = []
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        next_line = lines[number + 1] if number + 1 < len(lines) else ""
        if re.fullmatch(r"\|[\s:|-]+\|", next_line.strip()):  # a header row
            columns = [i for i, cell in enumerate(cells) if cell.strip("`").lower() == "code"]
            continue
        for i in columns:
            if i < len(cells):
                codes.update(re.findall(r"`([a-z_]+)`", cells[i]))
    return codes


def test_every_error_code_in_the_api_docs_exists_in_the_code() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "leads").rglob("*.py"))
    codes = documented_error_codes()
    assert {"invalid_submission", "required", "unknown_field"} <= codes  # the parser works
    missing = sorted(code for code in codes if f'"{code}"' not in source)
    assert missing == [], "docs/api.md lists error codes the code never uses"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_json_examples_parse(path: Path) -> None:
    for block in fenced_blocks(path.read_text(encoding="utf-8"), "json"):
        json.loads(block)


def test_forms_file_examples_load_and_agree(tmp_path: Path) -> None:
    text = (ROOT / "docs/forms.md").read_text(encoding="utf-8")
    toml_example, routing_example = fenced_blocks(text, "toml")
    [json_example] = fenced_blocks(text, "json")
    (tmp_path / "forms.toml").write_text(toml_example, encoding="utf-8")
    (tmp_path / "forms.json").write_text(json_example, encoding="utf-8")
    from_toml = load_forms(tmp_path / "forms.toml")
    from_json = load_forms(tmp_path / "forms.json")
    assert from_toml.forms == from_json.forms
    assert from_toml.forms["dry-needling"].consent_version == "2025-01"
    # Where a form's leads go: the example's forms load with the routing it describes.
    (tmp_path / "routing.toml").write_text(routing_example, encoding="utf-8")
    routed = load_forms(tmp_path / "routing.toml").forms
    assert routed["massage"].routing.inbox == ("massage@clinic.example",)
    assert routed["massage"].routing.webhook_urls == ()
    assert routed["back"].routing.webhook_urls is None
    assert routed["dry-needling"].routing.inbox is None


# docs/notifications.md: its settings, its webhook example and its receiver stay true.

NOTIFICATIONS = ROOT / "docs/notifications.md"


def test_every_notification_setting_is_in_notifications_md() -> None:
    notification_settings = list(NotificationSettings.model_fields)
    text = NOTIFICATIONS.read_text(encoding="utf-8")
    missing = [
        f"LEADS_{name.upper()}"
        for name in notification_settings
        if f"`LEADS_{name.upper()}`" not in text
    ]
    assert missing == []


def webhook_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    """The documented ``lead.created`` body and the ``enquiry`` object of a follow-up."""
    blocks = [json.loads(b) for b in fenced_blocks(NOTIFICATIONS.read_text("utf-8"), "json")]
    [created] = [b for b in blocks if b.get("type") == "lead.created"]
    [added] = [b for b in blocks if "enquiry" in b]
    return created, added


def test_webhook_examples_have_the_fields_the_code_sends() -> None:
    settings = Settings(_env_file=None)
    lead = Lead(form="dry-needling", name="Ann Smith", consent_version="1", consent_text="ok")
    enquiry = Enquiry(lead_id=lead.id, form="dry-needling", consent_version="1", consent_text="ok")
    message = OutboxMessage(lead_id=lead.id, kind="lead.created", channel="webhook")
    sent = webhook_payload(message, lead, None, None, settings)
    followup = webhook_payload(message, lead, enquiry, None, settings)
    created, added = webhook_examples()
    assert set(created) == set(sent)
    assert set(created["data"]) == set(sent["data"])
    assert set(created["data"]["attribution"]) == set(sent["data"]["attribution"])
    assert set(added["enquiry"]) == set(followup["data"]["enquiry"])


async def test_python_receiver_example_verifies_what_leads_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [source] = fenced_blocks(NOTIFICATIONS.read_text(encoding="utf-8"), "python")
    (tmp_path / "receiver.py").write_text(source, encoding="utf-8")
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    monkeypatch.setenv("LEADS_WEBHOOK_SECRET", secret)
    spec = importlib.util.spec_from_file_location("receiver_example", tmp_path / "receiver.py")
    assert spec is not None
    assert spec.loader is not None
    receiver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(receiver)

    created, _ = webhook_examples()
    url = "http://receiver.example/leads-webhook"
    transport = httpx.ASGITransport(app=receiver.app)
    async with httpx.AsyncClient(transport=transport) as client:
        signed = WebhookChannel(secret, client).signed_request(url, "msg-1", created)
        assert (await client.send(signed)).status_code == 204
        assert (await client.send(signed)).status_code == 204  # a repeat is answered too
        other = "whsec_" + base64.b64encode(b"x" * 32).decode()
        forged = WebhookChannel(other, client).signed_request(url, "msg-2", created)
        assert (await client.send(forged)).status_code == 400


# docs/spam.md: its table of spam reasons is the rules' own declarations (leads/abuse/).

SPAM = ROOT / "docs/spam.md"


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the table whose first header cell is ``header``."""
    rows: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == header:
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def test_the_spam_reason_table_is_what_the_rules_declare() -> None:
    documented = table_rows(SPAM.read_text(encoding="utf-8"), "Reason")
    declared = [
        [f"`{reason}`", rule.name, reason.explanation]
        for rule in built_in_rules()
        for reason in rule.reasons
    ]
    assert len(declared) >= 13  # every built-in rule's reasons
    assert documented == declared


def test_the_documented_order_of_the_checks_is_the_rules_order() -> None:
    steps = table_rows(SPAM.read_text(encoding="utf-8"), "Step")
    (rules_step,) = [cells[1] for cells in steps if cells[2].startswith("stored, flagged")]
    named = [name.lower() for name in re.findall(r"\[([^]]+)\]\(#", rules_step)]
    assert len(named) == len(list(built_in_rules()))
    for name, rule in zip(named, built_in_rules(), strict=True):
        assert name.startswith(rule.name), (named, rule.name)


SAMPLE_DATABASE = "/var/lib/leads/leads.db"


def test_the_leads_check_sample_is_what_leads_check_prints(tmp_path: Path) -> None:
    """docs/operations.md shows `leads check`: run it with the settings the sample shows,
    and it prints exactly that (a password as ***, with one of our own behind it)."""
    text = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    block = text.split("$ leads check\n", 1)[1].split("```", 1)[0]
    shown = block.splitlines()
    given = {}
    for line in shown:
        name, sep, value = line.partition("=")
        if sep and name.startswith("LEADS_") and value not in ("(not set)", "(set, hidden)"):
            given[name] = value.replace(":***@", ":hunter2@")
    database = tmp_path / "leads.db"
    given["LEADS_DATABASE_URL"] = f"sqlite:///{database}"
    env = leads_env()
    env.update(given)
    assert run_leads("migrate", env=env, cwd=tmp_path).returncode == 0
    done = run_leads("check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.replace(str(database), SAMPLE_DATABASE).splitlines()
    assert printed == shown
