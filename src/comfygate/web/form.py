"""A workflow's form as the templates draw it: the contract's fields plus widget details."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from comfygate.contracts import Workflow, form_fields

#: ranges wider than this get a number input only: a slider step would be too coarse
SLIDER_MAX_SPAN = 4096


@dataclass(frozen=True)
class FormField:
    name: str
    #: image | select | checkbox | number | textarea | text | seed
    widget: str
    title: str
    description: str | None
    required: bool
    advanced: bool
    default: Any
    minimum: float | None
    maximum: float | None
    #: the number input's step: "any" for floats without multipleOf
    step: str | None
    #: set when the field also gets a slider
    slider_step: str | None
    options: tuple[str, ...]
    max_length: int | None
    integer: bool

    @property
    def control_id(self) -> str:
        return f"f-{self.name}"

    @property
    def value(self) -> str:
        """The default as the input's value attribute."""
        if self.default is None or isinstance(self.default, bool):
            return ""
        return _number(self.default) if isinstance(self.default, int | float) else str(self.default)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _slider_step(minimum: float, maximum: float, step: float | None) -> str:
    if step is not None:
        return _number(step)
    # About a hundred stops on a round decimal step: 0..1 → 0.01, 1..30 → 0.1.
    return _number(10 ** math.floor(math.log10((maximum - minimum) / 100)))


def build_form(workflow: Workflow) -> list[FormField]:
    fields = []
    for raw in form_fields(workflow):
        widget = raw["widget"]
        integer = raw.get("type") == "integer"
        minimum, maximum = raw.get("minimum"), raw.get("maximum")
        step = raw.get("step")
        slider_step = None
        if raw["random"] and widget == "number":
            widget = "seed"
        elif (
            widget == "number"
            and minimum is not None
            and maximum is not None
            and 0 < maximum - minimum <= SLIDER_MAX_SPAN
        ):
            slider_step = _slider_step(minimum, maximum, step)
        fields.append(
            FormField(
                name=raw["name"],
                widget=widget,
                title=raw["title"],
                description=raw.get("description"),
                required=raw["required"],
                advanced=raw["advanced"],
                default=raw.get("default"),
                minimum=minimum,
                maximum=maximum,
                step=_number(step) if step is not None else ("1" if integer else "any"),
                slider_step=slider_step,
                options=tuple(str(o) for o in raw.get("enum", ())),
                max_length=raw.get("maxLength"),
                integer=integer,
            )
        )
    return fields
