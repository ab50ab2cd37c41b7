"""The operator's notification commands, run as an operator runs them: `leads notify-test`,
`leads outbox list`, and the delivery state in `leads export`."""

from __future__ import annotations

import asyncio
import json

from tests.mail import mail_server, smtp_settings
from tests.support import leads_cli, outbox_rows


async def test_notify_test_reports_each_channel(database_url: str) -> None:
    with mail_server() as smtp:
        env = {
            "LEADS_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?starttls=off",
            "LEADS_INBOX": "desk@clinic.example",
        }
        done = await asyncio.to_thread(leads_cli, database_url, "notify-test", **env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "smtp: delivered"
        (mail,) = smtp.wait_for(1)
        assert mail.message["Subject"] == "leads: test notification"
        assert mail.recipients == ["desk@clinic.example"]

        smtp.script = ["550 5.1.1 No such mailbox"]
        done = await asyncio.to_thread(leads_cli, database_url, "notify-test", **env)
        assert done.returncode == 1
        assert done.stdout.strip() == "smtp: FAILED (SMTP 550; permanent)"

    done = await asyncio.to_thread(leads_cli, database_url, "notify-test")
    assert done.returncode == 0
    assert done.stdout.startswith("log: delivered (no inbox configured")


async def test_outbox_list_and_export_show_delivery_state(
    make_client, lead, query, lead_of, database_url: str
) -> None:
    with mail_server() as smtp:
        smtp.script = ["550 5.1.1 No such mailbox"]
        client = await make_client(**smtp_settings(smtp))
        created = await client.post("/api/leads", json=lead())
        lead_id = await lead_of(created.json()["id"])
        rows = await outbox_rows(query, until="dead")

        listing = await asyncio.to_thread(leads_cli, database_url, "outbox", "list", "--dead")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.strip().splitlines()
        assert lines[0].split("\t")[:5] == ["id", "lead", "kind", "channel", "status"]
        assert len(lines) == 2
        fields = lines[1].split("\t")
        assert fields[1] == lead_id
        assert fields[2:6] == ["lead.created", "smtp", "dead", "1"]
        assert fields[-1] == "SMTP 550"
        pending = await asyncio.to_thread(leads_cli, database_url, "outbox", "list", "--pending")
        assert pending.stdout.strip().splitlines()[1:] == []

        exported = await asyncio.to_thread(leads_cli, database_url, "export")
        (record,) = [json.loads(line) for line in exported.stdout.splitlines()]
        (note,) = record["notifications"]
        assert note["status"] == "dead"
        assert note["id"] == str(fields[0])
        assert note["last_error"] == "SMTP 550"
        assert rows[0]["attempts"] == note["attempts"] == 1

        csv_out = await asyncio.to_thread(leads_cli, database_url, "export", "--format", "csv")
        header, row = csv_out.stdout.strip().splitlines()
        assert header.endswith(',"notifications"')  # every cell quoted
        assert row.endswith(',"dead:1"')


async def test_outbox_retry_of_an_unknown_id_is_one_clear_line(database_url: str, client) -> None:
    done = await asyncio.to_thread(
        leads_cli, database_url, "outbox", "retry", "00000000-0000-0000-0000-000000000000"
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("leads: error: not found or already delivered")
    assert "Traceback" not in done.stderr
    done = await asyncio.to_thread(leads_cli, database_url, "outbox", "retry")
    assert done.returncode == 2
    assert "--all-dead" in done.stderr


async def test_webhook_tokens_never_show_in_check_output(database_url: str) -> None:
    url = "https://hooks.example/catch/123?token=very-secret-token"
    done = await asyncio.to_thread(
        leads_cli, database_url, "check",
        LEADS_WEBHOOK_URLS=url, LEADS_WEBHOOK_SECRET="whsec_" + "A" * 32,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "very-secret-token" not in done.stdout + done.stderr
    assert "LEADS_WEBHOOK_URLS=https://hooks.example/catch/123?..." in done.stdout
