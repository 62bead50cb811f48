"""Every error comfygate raises, as one tree; the tree decides retries.

    ComfygateError
      ContractError                 a workflow folder or contract is broken (load time)
      InvalidParams                 parameters fail the contract (422, names each field)
      Unauthorized                  no valid credentials for this route (401)
      Forbidden                     credentials valid, but not allowed here (403)
      NotFound                      no such workflow / job / upload visible to the caller (404)
      Conflict                      request conflicts with current state (409)
        IdempotencyKeyInFlight
        UploadIncomplete            completing an upload whose bytes were not sent
        ModelsUnknown               a lease call named a model list this gateway lacks
      QueueFull                     the pool's queue is at its limit (429, Retry-After)
      RateLimited                   too many submissions in a window (429, RateLimit headers)
      TooManyActiveJobs             the caller has its most jobs queued and running (429)
      TooManyFailedAttempts         credentials failed too often from here (429, Retry-After)
      QuotaExceeded                 the job would exceed the caller's budget (402)
      Gone                          it existed and was deleted (410)
        JobDeleted
        OutputExpired
      IdempotencyKeyReuse           same key, another body (422)
      InvalidTransition             a job is not in a state that allows the change
      LeaseLost                     a fenced worker write matched no row
      InvalidUpload                 an uploaded file failed its checks (422)
      BodyTooLarge                  the request body is past its limit (413)
      JobError                      why one attempt of a job did not succeed
        RetryableJobError           the job goes back to the queue while attempts remain
          BackendUnreachable
          WebSocketLost
          BackendRestarted
          OutOfMemory
          LeaseExpired
        PermanentJobError           the job fails at once
          PromptRejected            ComfyUI refused the graph (node_errors)
          ExecutionFailed           a node raised while running
          JobTimeout                the prompt ran past the workflow's timeout
          OutputMissing             history listed a file that /view would not serve
          StorageFailed             the outputs could not be stored; nothing is published

Exception docstrings are the default messages. DatabaseBusy, DatabaseDamaged and
MissingExtra stand outside the tree.
"""

from __future__ import annotations

from typing import Any


class DatabaseBusy(Exception):
    """The database has no free connection right now; retry shortly.

    Outside the ComfygateError tree on purpose: it says nothing about a job or a
    request, so an agent treats it like any failure of the infrastructure (its lease
    stands and it tries again) rather than failing the job. The API answers 503."""

    retry_after_s = 1


class DatabaseDamaged(Exception):
    """The database file is damaged: SQLite cannot read it.

    Outside the ComfygateError tree, like DatabaseBusy: nothing a request or a job did
    causes it, and no retry mends it. It names the file and what a person can do, so
    the command line says that in one line instead of a traceback."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"the database {path} is damaged ({reason}): restore it from a backup, or "
            "move it aside with its -wal and -shm files to start with an empty one"
        )


class MissingExtra(Exception):
    """A setting needs an optional dependency that is not installed.

    Outside the ComfygateError tree, like DatabaseDamaged: the installation is short of
    a package, and the command line says which extra brings it in one line."""

    def __init__(self, extra: str, setting: str) -> None:
        self.extra = extra
        self.setting = setting
        super().__init__(
            f"{setting} needs the {extra} extra, which is not installed: "
            f"pip install 'comfygate[{extra}]'"
        )


class ComfygateError(Exception):
    """Something went wrong in comfygate."""

    code = "error"
    status_code = 400

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.details = details
        #: headers the route adds on its way out (a submit's RateLimit state, say)
        self.extra_headers: dict[str, str] = {}
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}


class ContractError(ComfygateError):
    """The workflow contract is invalid."""

    code = "invalid_contract"


class InvalidParams(ComfygateError):
    """The parameters do not satisfy the workflow contract."""

    code = "invalid_params"
    status_code = 422


class Unauthorized(ComfygateError):
    """Sign in first."""

    code = "unauthorized"
    status_code = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="comfygate"'}


class Forbidden(ComfygateError):
    """Not allowed."""

    code = "forbidden"
    status_code = 403


class NotFound(ComfygateError):
    """Not found."""

    code = "not_found"
    status_code = 404


class Conflict(ComfygateError):
    """The request conflicts with the current state."""

    code = "conflict"
    status_code = 409


class IdempotencyKeyInFlight(Conflict):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    code = "idempotency_key_in_flight"


class ModelsUnknown(Conflict):
    """This gateway does not know the model list of that digest: send `models` whole."""

    code = "models_unknown"


class UploadIncomplete(Conflict):
    """No bytes were sent to the upload URL yet: send the file there, then complete."""

    code = "upload_incomplete"


class QueueFull(ComfygateError):
    """The queue is full; retry later."""

    code = "queue_full"
    status_code = 429

    def __init__(
        self, message: str | None = None, *, retry_after_s: int = 60, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class RateLimited(ComfygateError):
    """Too many submissions; retry later."""

    code = "rate_limited"
    status_code = 429

    def __init__(
        self, message: str | None = None, *, headers: dict[str, str], details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self._headers = headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


class TooManyActiveJobs(ComfygateError):
    """Too many of your jobs are queued or running; wait for one to finish."""

    code = "too_many_active_jobs"
    status_code = 429

    @property
    def headers(self) -> dict[str, str]:
        # No estimate of when a job of this caller ends; a short, fixed wait.
        return {"Retry-After": "10"}


class TooManyFailedAttempts(ComfygateError):
    """Too many failed attempts to authenticate; retry later."""

    code = "too_many_failed_attempts"
    status_code = 429

    def __init__(self, message: str | None = None, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class QuotaExceeded(ComfygateError):
    """The job would exceed your budget; details say what remains and when it resets."""

    code = "quota_exceeded"
    status_code = 402

    def __init__(
        self, message: str | None = None, *, retry_after_s: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        #: None when waiting does not help: the job costs more than the whole budget
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class Gone(ComfygateError):
    """It existed and is gone for good."""

    code = "gone"
    status_code = 410


class JobDeleted(Gone):
    """The job was deleted."""

    code = "job_deleted"


class OutputExpired(Gone):
    """The output's retention ran out; its file was deleted."""

    code = "output_expired"


class IdempotencyKeyReuse(ComfygateError):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_key_reuse"
    status_code = 422


class InvalidTransition(Conflict):
    """The job is not in a state that allows this change."""

    code = "invalid_transition"


class LeaseLost(Conflict):
    """The lease is no longer held: the job was rescued, canceled or finished elsewhere."""

    code = "lease_lost"


class InvalidUpload(ComfygateError):
    """The uploaded file was refused."""

    code = "invalid_upload"
    status_code = 422


class BodyTooLarge(ComfygateError):
    """The request body is too large."""

    code = "body_too_large"
    status_code = 413


class JobError(ComfygateError):
    """The job attempt failed."""

    code = "job_failed"
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        node_id: str | None = None,
        class_type: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, details=details)
        self.node_id = node_id
        self.class_type = class_type


class RetryableJobError(JobError):
    """The attempt failed for a reason another attempt may not meet."""

    retryable = True


class BackendUnreachable(RetryableJobError):
    """The ComfyUI backend could not be reached."""

    code = "backend_unreachable"


class WebSocketLost(RetryableJobError):
    """The WebSocket to the backend was lost and the prompt's fate is unknown."""

    code = "websocket_lost"


class BackendRestarted(RetryableJobError):
    """The backend restarted and forgot the prompt."""

    code = "backend_restarted"


class OutOfMemory(RetryableJobError):
    """The backend ran out of memory."""

    code = "out_of_memory"


class LeaseExpired(RetryableJobError):
    """The worker stopped renewing its lease."""

    code = "lease_expired"


class PermanentJobError(JobError):
    """The attempt failed in a way another attempt would repeat."""


class PromptRejected(PermanentJobError):
    """ComfyUI refused the workflow graph."""

    code = "prompt_rejected"


class ExecutionFailed(PermanentJobError):
    """A node failed while the workflow ran."""

    code = "execution_failed"


class JobTimeout(PermanentJobError):
    """The job ran past its workflow's time limit."""

    code = "timeout"


class OutputMissing(PermanentJobError):
    """An output the backend reported could not be fetched."""

    code = "output_missing"


class StorageFailed(PermanentJobError):
    """The outputs could not be written to storage."""

    code = "storage_error"
