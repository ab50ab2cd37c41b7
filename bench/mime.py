"""CPU per notification message: building the clinic's email and the autoreply for a
realistic lead and writing them as the SMTP channel does (``to_outgoing`` then
``as_bytes``), 7-bit and with 8BITMIME.

    .venv/bin/python bench/mime.py                    # this tree's leads.notify.mime
    .venv/bin/python bench/mime.py --against main     # and the module at a git revision
    .venv/bin/python bench/mime.py --profile          # cProfile of this tree's module

Prints microseconds of process CPU (``time.process_time``) per message, the median of
repeats; with ``--against``, both in the same run, interleaved. Not a test: the machine is
shared, so figures move with its load.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType

from leads.notify import mime
from leads.notify.content import Email

ROOT = Path(__file__).resolve().parent.parent


def emails() -> list[Email]:
    """A clinic email and an autoreply, as leads.notify.content writes them."""
    lead = uuid.uuid4()
    message = (
        "Hello, I have had a toothache on the lower left side for three days now and it "
        "gets worse at night. Could I get an appointment this week? Mornings suit me best.\n"
        "Thank you, Zoë"
    )
    text = (
        'A new enquiry came in through "Book an appointment".\n\nName: Zoë Müller-Lüdenscheidt\n'
        "Email: zoe.mueller@example.org\nPhone: +44 20 7946 0958\nPrefers: a phone call\n"
        "Interested in: Emergency appointment\nReceived: 2026-11-24 16:19 GMT\n\nMessage:\n"
        f"{message}\n\nOpen this lead: https://leads.example.org/staff/leads/{lead}\n\n"
        "Reply to this email to write to Zoë directly.\n"
    )
    html = (
        "<!doctype html><html><body><p>A new enquiry came in through &quot;Book an "
        "appointment&quot;.</p><table cellpadding=4><tr><th align=left>Name</th><td>Zoë "
        'Müller-Lüdenscheidt</td></tr><tr><th align=left>Email</th><td><a href="mailto:'
        'zoe.mueller@example.org">zoe.mueller@example.org</a></td></tr></table>'
        f"<p><strong>Message:</strong></p><p>{message.replace(chr(10), '<br>')}</p>"
        f'<p><a href="https://leads.example.org/staff/leads/{lead}">Open this lead</a></p>'
        "</body></html>"
    )
    clinic = Email(
        sender='"Riverside Dental" <leads@clinic.example.org>',
        to=("frontdesk@clinic.example.org",),
        subject="New enquiry: Book an appointment from Zoë",
        text=text,
        html=html,
        message_id=f"<{uuid.uuid4()}@clinic.example.org>",
        reply_to="zoe.mueller@example.org",
        headers={"X-Leads-Notification-Id": str(uuid.uuid4())},
    )
    words = (
        "Thank you for getting in touch. We have your request and will get back to you soon, "
        "usually within one working day.\n\nIf your question is urgent, please call "
        "Riverside Dental on 020 7946 0000. In an emergency, call your local emergency number."
    )
    reply = Email(
        sender='"Riverside Dental" <leads@clinic.example.org>',
        to=("zoe.mueller@example.org",),
        subject="We have your request: Book an appointment",
        text=f"Hello Zoë,\n\n{words}\n\nRiverside Dental\n020 7946 0000\n",
        html=f"<!doctype html><html><body><p>Hello Zoë,</p><p>{words}</p></body></html>",
        message_id=f"<{uuid.uuid4()}@clinic.example.org>",
        reply_to="frontdesk@clinic.example.org",
        headers={"X-Leads-Notification-Id": str(uuid.uuid4()), "Auto-Submitted": "auto-replied"},
    )
    return [clinic, reply]


def module_at(revision: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:leads/notify/mime.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "mime_at_revision.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("mime_at_revision", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build(module: ModuleType, batch: list[Email], rounds: int) -> int:
    sent = 0
    for _ in range(rounds):
        for email in batch:
            for eight_bit in (False, True):
                module.to_outgoing(email, smtputf8=eight_bit).as_bytes(eight_bit=eight_bit)
                sent += 1
    return sent


def cpu_per_message(module: ModuleType, batch: list[Email], rounds: int) -> float:
    start = time.process_time()
    sent = build(module, batch, rounds)
    return (time.process_time() - start) / sent * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git revision whose mime.py to measure too")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=250)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    batch = emails()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(build, mime, batch, args.rounds)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    modules = {"this tree": mime}
    if args.against:
        modules[args.against] = module_at(args.against)
    figures: dict[str, list[float]] = {name: [] for name in modules}
    for module in modules.values():
        build(module, batch, 20)  # warm up
    for _ in range(args.repeat):
        for name, module in modules.items():
            figures[name].append(cpu_per_message(module, batch, args.rounds))
    for name, values in figures.items():
        print(
            f"{name:>12}: {statistics.median(values):8.1f} us CPU per message "
            f"(median of {args.repeat}; min {min(values):.1f}, max {max(values):.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
