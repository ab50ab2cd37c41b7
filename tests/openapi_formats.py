"""Schemathesis hooks for tests/test_openapi.py (loaded through SCHEMATHESIS_HOOKS): values
for the formats /openapi.json names that JSON Schema cannot spell out. Each strategy gives
only values the API takes, so a refusal of one is a bug."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime

import schemathesis
from hypothesis import strategies as st

# Valid numbers, written as visitors write them (LEADS_DEFAULT_REGION is US by default).
schemathesis.openapi.format(
    "phone",
    st.sampled_from(["+12025550143", "(202) 555-0143", "202-555-0188", "+44 20 7946 0958"]),
)
# Addresses email-validator takes: no quoted local parts, no special-use domains.
schemathesis.openapi.format(
    "email",
    st.builds(
        "{}@{}.example.com".format,
        st.from_regex(r"\A[a-z0-9][a-z0-9._+-]{0,30}[a-z0-9]\Z").filter(lambda s: ".." not in s),
        st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z"),
    ),
)


def _cursor(moment: datetime, lead_id: uuid.UUID) -> str:
    raw = json.dumps([moment.isoformat(), str(lead_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# A position in the list: any moment (with its offset) and any id.
schemathesis.openapi.format(
    "cursor",
    st.builds(_cursor, st.datetimes(timezones=st.just(UTC)), st.uuids()),
)


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """A client reuses an Idempotency-Key only to send the same enquiry again: a usable key
    is made this body's own (a reused key with another body is refused, by design)."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and re.fullmatch(r"[!-~]{1,200}", key):
        digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode())
        case.headers["Idempotency-Key"] = f"{key}-{digest.hexdigest()[:32]}"
    return case
