"""Retention: what is kept, for how long, and the litter of losing attempts.

Outputs are written under attempt-scoped keys, and only the attempt that completed
through the fence is in the job's manifest; files of attempts that lost (a stale agent,
a retried crash) are deleted here once the job has settled. Past retention, a job's
outputs go first (its row answers ``410 output_expired`` for them), then the job.
Uploads no job used go after a day. Every pass deletes in batches and logs counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from comfygate.clock import Clock
from comfygate.jobs.announce import write_manifest
from comfygate.jobs.keys import job_prefix, manifest_key, outputs_root, previews_prefix
from comfygate.jobs.model import Job, JobStatus
from comfygate.jobs.ports import Blobs, ClientStore, JobStore

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class Retention:
    outputs_s: float = 7 * DAY_S
    jobs_s: float = 30 * DAY_S
    uploads_s: float = DAY_S
    #: a job that ended this recently is left alone: a stale agent may still be writing
    settle_s: float = 120.0


@dataclass
class SweepReport:
    repaired_manifests: int = 0
    losing_files: int = 0
    expired_outputs: int = 0
    purged_jobs: int = 0
    unused_uploads: int = 0
    open_parts: int = 0

    def total(self) -> int:
        return (
            self.repaired_manifests
            + self.losing_files
            + self.expired_outputs
            + self.purged_jobs
            + self.unused_uploads
            + self.open_parts
        )


class Sweeper:
    def __init__(
        self, *, store: JobStore, blobs: Blobs, clock: Clock, retention: Retention
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.retention = retention
        #: jobs that ended before this were swept of losing attempts already
        self._swept_until: datetime | None = None

    async def run_once(self, *, settle_s: float | None = None) -> SweepReport:
        now = self.clock.now()
        settle = timedelta(seconds=self.retention.settle_s if settle_s is None else settle_s)
        report = SweepReport()
        report.repaired_manifests, report.losing_files = await self._settle_finished(now - settle)
        report.expired_outputs = await self._expire_outputs(now)
        report.purged_jobs = await self._purge_jobs(now)
        report.unused_uploads = await self._unused_uploads(now)
        # An agent killed mid-upload leaves its parts open; no attempt lasts a day.
        report.open_parts = await self.blobs.abort_open_parts(
            "outputs/", begun_before=now - timedelta(seconds=DAY_S)
        )
        if report.total():
            log.info(
                "sweep: %d manifests repaired, %d losing-attempt files, %d jobs' outputs "
                "expired, %d jobs purged, %d unused uploads, %d unfinished multipart uploads",
                report.repaired_manifests,
                report.losing_files,
                report.expired_outputs,
                report.purged_jobs,
                report.unused_uploads,
                report.open_parts,
            )
        return report

    async def repair_manifests(self, *, since: datetime) -> int:
        """Write the manifests a crash left unwritten (at start-up, before the sweep's
        settle time allows the full pass)."""
        repaired = 0
        for job in await self.store.finished_between(since=since, until=self.clock.now()):
            repaired += await self._repair_manifest(job)
        return repaired

    async def _repair_manifest(self, job: Job) -> int:
        if not _published(job):
            return 0
        if manifest_key(job.id) in {o.key for o in await self.blobs.list(job_prefix(job.id))}:
            return 0
        await write_manifest(self.blobs, job)
        return 1

    async def _settle_finished(self, until: datetime) -> tuple[int, int]:
        """Jobs that ended since the last pass: their manifest is there, and files of
        attempts that lost are gone. (manifests repaired, files deleted)"""
        # After a restart, look back over the whole outputs retention once.
        since = self._swept_until or until - timedelta(seconds=self.retention.outputs_s)
        repaired = deleted = 0
        for job in await self.store.finished_between(since=since, until=until):
            repaired += await self._repair_manifest(job)
            keep = _published(job)
            for stored in await self.blobs.list(outputs_root(job.id)):
                if stored.key not in keep:
                    await self.blobs.delete(stored.key)
                    deleted += 1
            await self.blobs.delete_prefix(previews_prefix(job.id))
        self._swept_until = until
        return repaired, deleted

    async def _expire_outputs(self, now: datetime) -> int:
        before = now - timedelta(seconds=self.retention.outputs_s)
        count = 0
        while batch := await self.store.expire_outputs(finished_before=before, now=now):
            for job in batch:
                await self.blobs.delete_prefix(outputs_root(job.id))
                await self.blobs.delete_prefix(previews_prefix(job.id))
            count += len(batch)
        return count

    async def _purge_jobs(self, now: datetime) -> int:
        before = now - timedelta(seconds=self.retention.jobs_s)
        count = 0
        while batch := await self.store.purge_jobs(finished_before=before):
            for job in batch:
                await self.remove_files(job)
            count += len(batch)
        return count

    async def remove_files(self, job: Job) -> None:
        await remove_job_files(self.store, self.blobs, job)

    async def _unused_uploads(self, now: datetime) -> int:
        cutoff = now - timedelta(seconds=self.retention.uploads_s)
        newest: dict[str, datetime] = {}
        for stored in await self.blobs.list("inputs"):
            folder = _input_folder(stored.key)
            at = stored.modified_at or now
            newest[folder] = max(at, newest.get(folder, at))
        old = {folder for folder, at in newest.items() if at < cutoff}
        return await self._drop_unused_inputs(old)

    async def _drop_unused_inputs(self, folders: Iterable[str]) -> int:
        return await drop_unused_inputs(self.store, self.blobs, folders)


async def remove_job_files(store: ClientStore, blobs: Blobs, job: Job) -> None:
    """Every file of a job, and its inputs unless another job still names them."""
    for prefix in (job_prefix(job.id), outputs_root(job.id), previews_prefix(job.id)):
        await blobs.delete_prefix(prefix)
    await drop_unused_inputs(store, blobs, {_input_folder(i.key) for i in job.inputs})


async def drop_unused_inputs(store: ClientStore, blobs: Blobs, folders: Iterable[str]) -> int:
    candidates = sorted(folders)
    if not candidates:
        return 0
    used = await store.inputs_in_use(candidates)
    for folder in candidates:
        if folder not in used:
            await blobs.delete_prefix(folder)
    return len(candidates) - len(used)


def _published(job: Job) -> set[str]:
    if job.status is not JobStatus.SUCCEEDED or job.outputs_expired_at or job.deleted_at:
        return set()
    return {o.key for o in job.outputs}


def _input_folder(key: str) -> str:
    """``inputs/{upload}/…`` → ``inputs/{upload}``."""
    return "/".join(key.split("/")[:2])
