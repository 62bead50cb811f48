"""Webhooks: the caller's signing secret, a job's deliveries with every attempt, and
redelivery. A job's deliveries are visible to its owner and admins, like the job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from comfygate.api.deps import Reader, Writer, gateway
from comfygate.api.jobs import _check_id
from comfygate.errors import NotFound
from comfygate.gateway import Gateway
from comfygate.jobs.webhooks import Delivery

router = APIRouter(prefix="/v1", tags=["webhooks"])

GW = Annotated[Gateway, Depends(gateway)]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def render_delivery(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "type": d.type,
        "url": d.url,
        "status": d.status.value,
        "attempts": [
            {
                "attempt": a.attempt,
                "at": a.at.isoformat(),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in d.log
        ],
        "next_attempt_at": _iso(d.next_attempt_at),
        "give_up_at": _iso(d.give_up_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "event_at": d.event_at.isoformat(),
        "delivered_at": _iso(d.delivered_at),
    }


@router.get("/webhooks/secret")
async def webhook_secret(gw: GW, who: Reader) -> dict[str, Any]:
    """The secret that signs the caller's webhooks (Standard Webhooks: verify
    ``webhook-signature`` over ``webhook-id.webhook-timestamp.body``), and the endpoints
    a receiver disabled by answering 410, with why."""
    return {
        "secret": gw.webhook_secret(who.id),
        "disabled_endpoints": [
            {"url": url, "reason": reason}
            for url, reason in sorted((await gw.webhooks.disabled(who.id)).items())
        ],
    }


@router.get("/jobs/{job_id}/webhooks")
async def job_webhooks(job_id: str, gw: GW, who: Reader) -> dict[str, Any]:
    """The job's webhook deliveries, each with its attempts (status code, error, time)."""
    job = await gw.service.get(who, _check_id(job_id))
    return {"deliveries": [render_delivery(d) for d in await gw.webhooks.for_job(job.id)]}


@router.post("/jobs/{job_id}/webhooks/redeliver", status_code=202)
async def redeliver(
    job_id: str,
    gw: GW,
    who: Writer,
    delivery_id: Annotated[
        str | None,
        Body(embed=True, max_length=36, description="one delivery; all of the job's if absent"),
    ] = None,
) -> dict[str, Any]:
    """Send the job's deliveries again (the same ``webhook-id``, a fresh day of
    retries). Redelivering re-enables an endpoint that a 410 had disabled."""
    job = await gw.service.get(who, _check_id(job_id))
    ids = await gw.webhooks.redeliver(job.id, now=gw.clock.now(), delivery_id=delivery_id)
    if delivery_id is not None and not ids:
        raise NotFound("no such webhook delivery for this job")
    gw.doorbell.ring("webhooks")
    return {"redelivered": ids}
