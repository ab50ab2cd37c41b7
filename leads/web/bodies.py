"""Reading request bodies safely: size capped before parsing, content type checked."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from leads.errors import BodyTooLarge, MalformedBody, UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_FIELDS = 50


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from Content-Length before reading, or while counting a chunked body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedBody("Content-Length is not a number.")
        if int(declared) > limit:
            raise BodyTooLarge(f"The body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"The body is larger than {limit} bytes.")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise MalformedBody("The client went away before sending the whole body.") from exc
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, object]:
    if media_type(request) != "application/json":
        raise UnsupportedMediaType("Send the lead as application/json.")
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedBody("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedBody("The body must be a JSON object.")
    return data


class _StrictTextParser(MultiPartParser):
    """Starlette's multipart parser reads a text part that is not valid in its charset
    (UTF-8 unless the request says otherwise) as Latin-1, silently; here it is refused,
    as invalid UTF-8 in JSON is."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                part.data.decode(self._charset or "utf-8")
            except (UnicodeDecodeError, LookupError) as exc:
                raise MultiPartException("A text field is not valid text.") from exc
        super().on_part_end()


async def read_form_fields(request: Request, limit: int) -> dict[str, object]:
    """Form fields as a browser sends them; a file upload becomes a non-text value, which
    validation then reports against its field."""
    kind = media_type(request)
    if kind not in FORM_TYPES:
        raise UnsupportedMediaType("Send the form as a browser does (urlencoded or multipart).")
    body = await read_body(request, limit)
    if kind == "application/x-www-form-urlencoded":
        try:
            # errors="strict": "%ff" is not text, and must not be stored as U+FFFD.
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedBody("The form data could not be read.") from exc
        return dict(pairs)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _StrictTextParser(request.headers, replay(), max_fields=MAX_FORM_FIELDS, max_files=5)
    try:
        form = await parser.parse()
    except (MultiPartException, FormParserError, UnicodeDecodeError) as exc:
        raise MalformedBody("The form data could not be read.") from exc
    fields: dict[str, object] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            await value.close()
            fields[key] = object()  # not text: reported as invalid_type
        else:
            fields[key] = value
    return fields
