"""What a web form needs to draw a workflow's parameters, in contract order."""

from __future__ import annotations

from typing import Any

from comfygate.contracts.model import Parameter, Workflow
from comfygate.contracts.text import is_multiline

_COPIED = (
    "title",
    "description",
    "default",
    "minimum",
    "maximum",
    "enum",
    "minLength",
    "maxLength",
    "examples",
)


def _widget(param: Parameter) -> str:
    schema = param.schema
    if param.kind == "image":
        return "image"
    if "enum" in schema:
        return "select"
    kind = schema.get("type")
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string" and is_multiline(schema):
        return "textarea"
    return "text"


def form_fields(workflow: Workflow) -> list[dict[str, Any]]:
    """One dict per parameter: name, widget (image/select/checkbox/number/textarea/text),
    required, random, advanced, step, and the schema's title/description/default/bounds."""
    required = set(workflow.contract.get("required", []))
    fields = []
    for name, param in workflow.parameters.items():
        field: dict[str, Any] = {
            "name": name,
            "widget": _widget(param),
            "type": param.schema.get("type"),
            "required": name in required,
            "random": param.random,
            "advanced": param.advanced,
        }
        field.update({k: param.schema[k] for k in _COPIED if k in param.schema})
        field.setdefault("title", name.replace("_", " ").capitalize())
        if "multipleOf" in param.schema:
            field["step"] = param.schema["multipleOf"]
        elif param.schema.get("type") == "integer":
            field["step"] = 1
        fields.append(field)
    return fields
