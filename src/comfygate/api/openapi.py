"""The OpenAPI document, completed where FastAPI cannot know: the error answers every
operation may give (one body shape, ``Error``), the job as clients see it, the limits
of an upload declaration as configured, and the links between operations (a submit's
job id feeds reading, canceling and deleting it), which clients and the schemathesis
suite follow.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from comfygate.jobs import metadata
from comfygate.jobs.model import JobStatus
from comfygate.storage.sanitize import FORMAT_TYPES
from comfygate.storage.uploads import UploadLimits

ERROR_REF = {"$ref": "#/components/schemas/Error"}
JOB_REF = {"$ref": "#/components/schemas/Job"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "description": "For a 422, each failing field as "
                    "{path: JSON Pointer, message, keyword}",
                },
            },
        }
    },
}

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}

JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "workflow", "params", "progress", "error", "outputs", "urls"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "workflow": {"type": "string"},
        "workflow_version": {"type": "string"},
        "params": {"type": "object"},
        "metadata": {"type": "object"},
        "progress": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "number", "minimum": 0, "maximum": 1}},
        },
        "queue_position": {"type": ["integer", "null"]},
        "attempts": {"type": "integer", "minimum": 0},
        "metrics": {"type": "object"},
        "error": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "node_id": _NULLABLE_STRING,
                        "class_type": _NULLABLE_STRING,
                    },
                },
            ]
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind", "content_type", "bytes", "sha256", "url"],
                "properties": {
                    "kind": {"type": "string"},
                    "content_type": {"type": "string"},
                    "bytes": {"type": "integer", "minimum": 0},
                    "sha256": {"type": "string"},
                    "node_id": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
        "retry_of": _NULLABLE_STRING,
        "urls": {
            "type": "object",
            "required": ["self", "events", "cancel"],
            "properties": {k: {"type": "string"} for k in ("self", "events", "cancel")},
        },
        "created_at": _TIME,
        "started_at": _TIME,
        "finished_at": _TIME,
        "updated_at": _TIME,
        "outputs_expired_at": _TIME,
    },
}

_MEANINGS = {
    400: "The body could not be read",
    401: "No valid credentials",
    403: "Not allowed for these credentials",
    404: "Nothing of that name visible to the caller",
    409: "Conflicts with the current state",
    410: "Deleted, or its retention ran out",
    413: "The body is too large",
    422: "Invalid input: details name each failing field",
    429: "Too many requests or a full queue; Retry-After says when to try again",
}

#: (method, path pattern) → error statuses beyond the ones every operation of its kind has
_EXTRA: list[tuple[str, str, tuple[int, ...]]] = [
    ("post", r"^/v1/workflows/[^/]+/jobs$", (409, 429)),
    ("get", r"^/v1/jobs/\{job_id\}(/attempts|/events|/shares|/webhooks)?$", (410,)),
    ("post", r"^/v1/jobs/\{job_id\}/(cancel|share|retry|webhooks/redeliver)$", (409, 410)),
    ("delete", r"^/v1/jobs/\{job_id\}(/shares/\{share_id\})?$", (409, 410)),
    ("post", r"^/worker/", (409, 410)),
    ("put", r"^/worker/", (409, 410, 413)),
    ("get", r"^/worker/", (409, 410)),
    ("post", r"^/v1/admin/", (409, 429)),
    ("post", r"^/v1/uploads/\{upload_id\}/complete$", (409,)),
]

_JOB_OPS = {
    "get": ("get", "/v1/jobs/{job_id}"),
    "cancel": ("post", "/v1/jobs/{job_id}/cancel"),
    "attempts": ("get", "/v1/jobs/{job_id}/attempts"),
    "share": ("post", "/v1/jobs/{job_id}/share"),
    "delete": ("delete", "/v1/jobs/{job_id}"),
}


def install(app: FastAPI, upload_limits: UploadLimits) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            complete(schema, upload_limits)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any], upload_limits: UploadLimits) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["Job"] = JOB_SCHEMA
    components.update(metadata.SCHEMAS)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path, item in paths.items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                _errors(path, method, op)
    _jobs(paths)
    _uploads(paths, components, upload_limits)
    _links(paths)


def _errors(path: str, method: str, op: dict[str, Any]) -> None:
    statuses: set[int] = {422} if op.get("parameters") or "requestBody" in op else set()
    if path.startswith(("/v1/", "/worker/")):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if "requestBody" in op:
        statuses.add(400)
    for verb, pattern, extra in _EXTRA:
        if verb == method and re.search(pattern, path):
            statuses |= set(extra)
    responses: dict[str, Any] = op["responses"]
    for status in sorted(statuses):
        entry = responses.setdefault(str(status), {})
        entry.setdefault("description", _MEANINGS[status])
        entry["content"] = {"application/json": {"schema": ERROR_REF}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _jobs(paths: dict[str, dict[str, Any]]) -> None:
    """The job's shape wherever one is answered."""
    for (method, path), status in {
        _JOB_OPS["get"]: "200",
        _JOB_OPS["cancel"]: "202",
    }.items():
        op = paths.get(path, {}).get(method)
        if op is not None:
            op["responses"][status] = _json(JOB_REF, op["responses"][status].get("description", ""))
    listing = paths.get("/v1/jobs", {}).get("get")
    if listing is not None:
        listing["responses"]["200"] = _json(
            {
                "type": "object",
                "required": ["jobs", "next_cursor"],
                "properties": {
                    "jobs": {"type": "array", "items": JOB_REF},
                    "next_cursor": _NULLABLE_STRING,
                },
            },
            "The caller's jobs, newest first",
        )
    for item in paths.values():
        op = item.get("post")
        if op and str(op.get("operationId", "")).startswith("submit_") and "202" in op["responses"]:
            op["responses"]["202"] = _json(JOB_REF, "The job was accepted")
            op["responses"]["202"]["headers"] = {
                "Location": {"schema": {"type": "string"}, "description": "the job's URL"}
            }


def _uploads(
    paths: dict[str, dict[str, Any]], components: dict[str, Any], limits: UploadLimits
) -> None:
    """The declaration's limits are settings: the document states the configured ones."""
    request = components.get("UploadRequest")
    if request is None:
        return
    props = request["properties"]
    props["content_type"] = {
        "type": "string",
        "enum": [FORMAT_TYPES[f] for f in limits.formats if f in FORMAT_TYPES],
    }
    props["bytes"] = {"type": "integer", "minimum": 1, "maximum": limits.max_bytes}


def _operation_id(paths: dict[str, dict[str, Any]], method: str, path: str) -> str | None:
    op = paths.get(path, {}).get(method)
    return None if op is None else op.get("operationId")


def _links(paths: dict[str, dict[str, Any]]) -> None:
    job_links = {
        f"{name.capitalize()}Job": {
            "operationId": op_id,
            "parameters": {"job_id": "$response.body#/id"},
        }
        for name, (method, path) in _JOB_OPS.items()
        if (op_id := _operation_id(paths, method, path)) is not None
    }
    for path, item in paths.items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            responses = op.get("responses", {})
            is_submit = str(op.get("operationId", "")).startswith("submit_")
            if is_submit or (method, path) in (_JOB_OPS["get"], _JOB_OPS["cancel"]):
                status = "200" if (method, path) == _JOB_OPS["get"] else "202"
                if status in responses:
                    responses[status]["links"] = job_links
    workflow_id = _operation_id(paths, "get", "/v1/workflows/{name}")
    listing = paths.get("/v1/workflows", {}).get("get")
    if listing is not None and workflow_id is not None and "200" in listing["responses"]:
        listing["responses"]["200"]["links"] = {
            "GetWorkflow": {
                "operationId": workflow_id,
                "parameters": {"name": "$response.body#/workflows/0/name"},
            }
        }
    complete_id = _operation_id(paths, "post", "/v1/uploads/{upload_id}/complete")
    declare = paths.get("/v1/uploads", {}).get("post")
    if declare is not None and complete_id is not None and "201" in declare["responses"]:
        declare["responses"]["201"]["links"] = {
            "CompleteUpload": {
                "operationId": complete_id,
                "parameters": {"upload_id": "$response.body#/id"},
            }
        }
