"""Schemathesis hooks for test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Two values cannot come from the schema alone, and without them a schema-valid request
is rightly refused:

* an ``Idempotency-Key`` is a promise about one body; generated keys repeat ("0") with
  other bodies, which is a 422 ``idempotency_key_reuse``. Each case gets a fresh key.
* an image parameter names a completed upload, which only exists once bytes were sent
  to its signed URL. The test makes one and passes its id in ``COMFYGATE_FUZZ_UPLOAD``;
  an id-shaped value becomes that id, and the file part of a positive case a picture.
  An https URL given instead (which the gateway would fetch) becomes that id too.
* a webhook URL must resolve to an address the gateway may reach: it becomes
  ``COMFYGATE_FUZZ_WEBHOOK`` (allow-listed by the test).
"""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import schemathesis
from PIL import Image
from schemathesis import Case
from schemathesis.transport.serialization import Binary

from comfygate.ids import is_uuid

IMAGE_PARAMS = ("image",)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


def _give_real_values(case: Case[Any]) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    body: Any = case.body
    if not isinstance(body, dict):
        return
    upload = os.environ.get("COMFYGATE_FUZZ_UPLOAD", "")
    params = body.get("params")
    if isinstance(params, dict) and upload:
        for name in IMAGE_PARAMS:
            value = params.get(name)
            if isinstance(value, str) and (is_uuid(value) or value.startswith("https://")):
                params[name] = upload
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    # A JSON submit names the webhook beside params; a multipart one inside its params part.
    # A negative case keeps its URL: a refused URL is what it wants.
    for holder in (body, params) if not negative else ():
        hook = holder.get("webhook") if isinstance(holder, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("url"), str):
            hook["url"] = os.environ.get("COMFYGATE_FUZZ_WEBHOOK", hook["url"])
    # Only where the case means to be valid: a refused part is what a negative case wants.
    for name in IMAGE_PARAMS:
        if not negative and isinstance(body.get(name), bytes | str | Binary):
            body[name] = PNG


def _has_file(case: Case[Any]) -> bool:
    return isinstance(case.body, dict) and any(isinstance(v, Binary) for v in case.body.values())


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: Case[Any]) -> Case[Any]:
    # The coverage, fuzzing and stateful phases: edits here are the case as generated.
    _give_real_values(case)
    return case


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    # Every phase, the examples phase too, just before sending. Schemathesis revalidates a
    # case edited here and counts a body with a file as invalid, so those are left alone
    # (map_case saw them already).
    if not _has_file(case):
        _give_real_values(case)
