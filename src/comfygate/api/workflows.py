"""Workflows and job submission: one documented submit operation per workflow."""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from comfygate import json_depth
from comfygate.api.deps import Who, Writer, counted_submission, gateway, renderer
from comfygate.contracts import Workflow
from comfygate.contracts.text import publish_text_rules
from comfygate.errors import InvalidParams, InvalidUpload
from comfygate.gateway import Gateway
from comfygate.ids import UUID_PATTERN
from comfygate.jobs.metadata import METADATA_REF
from comfygate.jobs.webhooks import WEBHOOK_SCHEMA
from comfygate.principal import Principal

router = APIRouter(prefix="/v1", tags=["workflows"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays within 24 h return the first answer; another body → 422.",
    ),
]


def public_schema(workflow: Workflow) -> dict[str, Any]:
    """The contract as clients see it: JSON Schema with our x- keywords kept (the web
    form reads x-kind, x-random, x-advanced) and x-bind dropped (graph internals), every
    free-text string with the rules it is held to (maxLength, no control characters)."""
    schema = publish_text_rules(workflow.contract)
    # The validator adds it whether or not the contract says so: unknown names are refused.
    schema["additionalProperties"] = False
    # A parameter with a default (or drawn at random) may be left out, required or not.
    if "required" in schema:
        schema["required"] = [
            n
            for n in schema["required"]
            if n not in workflow.parameters
            or not ("default" in workflow.parameters[n].schema or workflow.parameters[n].random)
        ]
    schema.pop("x-comfygate", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("x-bind", None)
            if prop.get("x-kind") == "image":
                prop.pop("maxLength", None)
                prop["description"] = (
                    f"{prop.get('description', '') or 'The id of a completed upload.'} Or an "
                    "https URL: the gateway fetches it (with the limits of an upload) and "
                    "stores it as an upload."
                ).strip()
                prop["pattern"] = f"({UUID_PATTERN})|(^https://)"
    return schema


def describe(gw: Gateway, workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "title": workflow.title,
        "description": workflow.description,
        "version": workflow.version,
        "schema": public_schema(workflow),
        "examples": list(workflow.examples),
        "outputs": list(workflow.outputs),
        "available": gw.pool_available(workflow.pool),
    }


@router.get("/workflows")
async def list_workflows(gw: Annotated[Gateway, Depends(gateway)], who: Who) -> dict[str, Any]:
    return {"workflows": [describe(gw, wf) for wf in gw.workflows.values()]}


@router.get("/workflows/{name}")
async def get_workflow(
    name: str, gw: Annotated[Gateway, Depends(gateway)], who: Who
) -> dict[str, Any]:
    return describe(gw, gw.service.workflow(name))


async def _read_submission(
    gw: Gateway, principal: Principal, workflow: Workflow, request: Request
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], Any]:
    """``(params, metadata, digests of the files sent, webhook)`` of a submit body."""
    content_type = request.headers.get("content-type", "")
    digests: list[str] = []
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=16, max_fields=64) as form:
            raw = form.get("params")
            if isinstance(raw, UploadFile):
                raw = (await raw.read()).decode()
            body = _parse_json(raw or "{}", "/params")
            _refuse_unknown_fields(body)
            params = body.get("params", {})
            metadata = body.get("metadata", {})
            webhook = body.get("webhook")
            image_params = {n for n, p in workflow.parameters.items() if p.kind == "image"}
            if isinstance(params, dict) and (given := sorted(image_params & set(params))):
                # One way per request: pictures come as parts here, never as upload ids.
                raise InvalidParams(
                    details=[
                        {
                            "path": f"/{name}",
                            "keyword": "x-kind",
                            "message": "in a multipart submit a picture is a file part",
                        }
                        for name in given
                    ]
                )
            for name, value in form.multi_items():
                if name == "params":
                    continue
                if name not in image_params or not isinstance(value, UploadFile):
                    raise InvalidParams(
                        details=[
                            {
                                "path": f"/{name}",
                                "keyword": "x-kind",
                                "message": "not an image parameter of this workflow",
                            }
                        ]
                    )
                # One byte past the limit is enough to refuse it.
                data = await value.read(gw.uploads.limits.max_bytes + 1)
                try:
                    info = await gw.uploads.put_direct(principal.id, data)
                except InvalidUpload as exc:
                    raise InvalidParams(
                        exc.message,
                        details=[{"path": f"/{name}", "message": exc.message, "keyword": "x-kind"}],
                    ) from None
                params[name] = info["id"]
                digests.append(info["sha256"])
    else:
        body = _parse_json((await request.body()).decode("utf-8", "replace") or "{}", "")
        _refuse_unknown_fields(body)
        params = body.get("params", {})
        metadata = body.get("metadata", {})
        webhook = body.get("webhook")
    if not isinstance(params, dict):
        raise InvalidParams(
            details=[{"path": "/params", "keyword": "type", "message": "params must be an object"}]
        )
    return params, metadata, tuple(digests), webhook


def _refuse_unknown_fields(body: dict[str, Any]) -> None:
    """A submit names parameters, never a graph: any field beside them is refused."""
    unknown = set(body) - {"params", "metadata", "webhook"}
    if unknown:
        raise InvalidParams(
            details=[
                {"path": f"/{k}", "keyword": "additionalProperties", "message": "unknown field"}
                for k in sorted(unknown)
            ]
        )


def _parse_json(raw: str, path: str) -> dict[str, Any]:
    try:
        value = json_depth.loads(raw)
    except json_depth.TooDeep as exc:
        raise InvalidParams(
            "the body is nested too deep",
            details=[{"path": exc.pointer, "keyword": "maxDepth", "message": str(exc)}],
        ) from None
    except ValueError as exc:
        raise InvalidParams(
            "the body is not valid JSON",
            details=[{"path": path or "/", "keyword": "json", "message": str(exc)}],
        ) from None
    if not isinstance(value, dict):
        raise InvalidParams(
            details=[{"path": path or "/", "keyword": "type", "message": "must be a JSON object"}]
        )
    return value


async def submit(
    name: str,
    request: Request,
    gw: Gateway,
    principal: Principal,
    idempotency_key: str | None,
) -> JSONResponse:
    workflow = gw.service.workflow(name)
    # Counted before the body is read: a refused flood costs no upload decoding.
    async with counted_submission(gw, principal, request) as limit_headers:
        params, metadata, digests, webhook = await _read_submission(
            gw, principal, workflow, request
        )
        result = await gw.service.submit(
            principal,
            name,
            params,
            metadata,
            idempotency_key=idempotency_key,
            file_digests=digests,
            render=renderer(request).job,
            webhook=webhook,
        )
    headers = dict(limit_headers)
    if result.job_id:
        headers["Location"] = f"/v1/jobs/{result.job_id}"
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.body, result.status_code, headers=headers)


def submit_openapi(workflow: Workflow) -> dict[str, Any]:
    schema = public_schema(workflow)
    body: dict[str, Any] = {
        "type": "object",
        "properties": {
            "params": schema,
            "metadata": METADATA_REF,
            "webhook": WEBHOOK_SCHEMA,
        },
        "additionalProperties": False,
    }
    if schema.get("required"):
        body["required"] = ["params"]
    images = [n for n, p in workflow.parameters.items() if p.kind == "image"]
    # In a multipart submit the pictures are parts of their own, not ids in params.
    part_schema = copy.deepcopy(body)
    part_params = part_schema["properties"]["params"]
    for name in images:
        part_params["properties"].pop(name, None)
    part_params["required"] = [n for n in part_params.get("required", []) if n not in images]
    if not part_params["required"]:
        del part_params["required"]
        part_schema.pop("required", None)
    multipart: dict[str, Any] = {
        "type": "object",
        "properties": {
            "params": {**part_schema, "description": "JSON: {params, metadata, webhook}"},
            **{n: {"type": "string", "format": "binary"} for n in images},
        },
        "additionalProperties": False,
    }
    if required_images := [n for n in images if n in schema.get("required", [])]:
        multipart["required"] = required_images
    return {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": body,
                    "examples": {
                        f"example{i}": {
                            "summary": ex.get("title", f"example {i}"),
                            "value": {"params": ex.get("params", {})},
                        }
                        for i, ex in enumerate(workflow.examples)
                    },
                },
                "multipart/form-data": {
                    "schema": multipart,
                    "encoding": {"params": {"contentType": "application/json"}},
                },
            },
            # Left out, every parameter takes its default: fine unless one has none.
            "required": bool(schema.get("required")),
        },
        "responses": {
            "202": {"description": "The job was accepted."},
            "402": {"description": "quota_exceeded: the job would pass the caller's budget."},
            "429": {
                "description": "rate_limited, too_many_active_jobs or queue_full; see Retry-After."
            },
        },
    }


def add_submit_routes(app: FastAPI, workflows: dict[str, Workflow]) -> None:
    """A documented operation per workflow, then a catch-all that answers 404 for others."""
    for wf in workflows.values():

        def make(name: str) -> Any:
            async def endpoint(
                request: Request,
                gw: Annotated[Gateway, Depends(gateway)],
                principal: Writer,
                idempotency_key: IdempotencyKey = None,
            ) -> JSONResponse:
                return await submit(name, request, gw, principal, idempotency_key)

            return endpoint

        app.add_api_route(
            f"/v1/workflows/{wf.name}/jobs",
            make(wf.name),
            methods=["POST"],
            status_code=202,
            tags=["jobs"],
            summary=f"Run {wf.title}",
            operation_id=f"submit_{wf.name.replace('-', '_')}",
            openapi_extra=submit_openapi(wf),
        )

    @app.post("/v1/workflows/{name}/jobs", include_in_schema=False)
    async def unknown_workflow(
        name: str,
        request: Request,
        gw: Annotated[Gateway, Depends(gateway)],
        principal: Writer,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await submit(name, request, gw, principal, idempotency_key)
