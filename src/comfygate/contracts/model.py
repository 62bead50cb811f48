"""The loaded form of a workflow folder: its graph, its contract and what they bind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from comfygate.contracts.cost import FREE, Cost
from comfygate.contracts.text import bound_strings


@dataclass(frozen=True)
class Binding:
    """One node input a parameter patches, with the title already resolved to an id."""

    node_id: str
    input: str


@dataclass(frozen=True)
class Parameter:
    name: str
    schema: dict[str, Any]
    bindings: tuple[Binding, ...]
    #: "image" for an uploaded picture (the value is an upload id), else None
    kind: str | None
    #: left out, the value is drawn at random (seeds)
    random: bool
    #: a form collapses it
    advanced: bool


@dataclass(frozen=True)
class Workflow:
    """A loaded, checked workflow. ``graph`` and ``contract`` are shared: never mutate them."""

    name: str
    path: Path
    graph: dict[str, Any]
    contract: dict[str, Any]
    version: str
    title: str
    description: str
    pool: str
    timeout_s: float
    max_attempts: int
    queue_ttl_s: float
    #: a timed-out attempt is retried like a crash (default: the job fails with timeout)
    retry_on_timeout: bool
    #: its pool's warm-up: a backend runs it (first example, else defaults) before traffic
    warmup: bool
    #: node ids whose files are the job's outputs
    outputs: tuple[str, ...]
    #: each {"title"?: str, "params": {...}}
    examples: tuple[dict[str, Any], ...]
    parameters: dict[str, Parameter]
    #: what one job costs against its owner's budget (x-comfygate.cost)
    cost: Cost = FREE
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once per workflow: compiling the schema costs more than validating with it.
        object.__setattr__(self, "validator", params_validator(self.contract))


def params_schema(contract: dict[str, Any]) -> dict[str, Any]:
    """The schema parameters are validated with: the contract, closed to unknown keys,
    with every free-text string bounded."""
    return {**bound_strings(contract), "additionalProperties": False}


def params_validator(contract: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(
        params_schema(contract), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
