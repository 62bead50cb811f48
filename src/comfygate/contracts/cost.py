"""A job's cost, declared in ``x-comfygate.cost`` and computed from its parameters.

The form is data, never code: a base plus terms, each a factor times the product of some
numeric parameters (docs/contract.md, "Cost")::

    {"base": 1, "per": [{"param": "steps", "factor": 0.1},
                        {"params": ["width", "height"], "factor": 1e-6}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_NUMBER = {"type": "number", "minimum": 0}

COST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "base": _NUMBER,
        "per": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["factor"],
                "additionalProperties": False,
                "properties": {
                    "param": {"type": "string", "minLength": 1},
                    "params": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "minLength": 1},
                    },
                    "factor": _NUMBER,
                },
                "allOf": [
                    {
                        "oneOf": [{"required": ["param"]}, {"required": ["params"]}],
                        "x-message": 'a cost term is {"param": NAME, "factor": N} '
                        'or {"params": [NAME, ...], "factor": N}',
                    }
                ],
            },
        },
    },
}
"""The meta-schema of ``x-comfygate.cost``."""


@dataclass(frozen=True)
class CostTerm:
    params: tuple[str, ...]
    factor: float


@dataclass(frozen=True)
class Cost:
    """``base`` plus, per term, ``factor`` times the product of its parameters' values."""

    base: float = 0.0
    terms: tuple[CostTerm, ...] = ()

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Cost:
        """From a spec that already passed ``COST_SCHEMA``."""
        terms = tuple(
            CostTerm(
                params=(t["param"],) if "param" in t else tuple(t["params"]),
                factor=float(t["factor"]),
            )
            for t in spec.get("per", ())
        )
        return cls(base=float(spec.get("base", 0)), terms=terms)

    @property
    def names(self) -> set[str]:
        return {name for term in self.terms for name in term.params}

    def of(self, params: dict[str, Any]) -> float:
        """The cost of a job with these validated parameters. A term whose parameter
        was left out (optional, no default) adds nothing."""
        total = self.base
        for term in self.terms:
            values = [params.get(name) for name in term.params]
            if any(not _is_number(v) for v in values):
                continue
            product = term.factor
            for value in values:
                product *= float(value)  # type: ignore[arg-type]
            total += product
        return total


#: a workflow without ``x-comfygate.cost`` costs nothing
FREE = Cost()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cost_problems(spec: dict[str, Any], properties: dict[str, Any]) -> list[str]:
    """What the meta-schema cannot see: every named parameter exists and is numeric."""
    problems = []
    for name in sorted(Cost.parse(spec).names):
        schema = properties.get(name)
        if schema is None:
            problems.append(f"x-comfygate.cost names no parameter {name!r}")
        elif schema.get("type") not in ("integer", "number"):
            problems.append(f"x-comfygate.cost: parameter {name!r} is not an integer or number")
    return problems
