"""Workflow templates and their parameter contracts.

A workflow is a folder holding ComfyUI's API-format graph (``workflow.api.json``) and a
JSON Schema for its parameters (``contract.json``); docs/contract.md describes the format.
Pure: reads files, talks to nothing.
"""

from __future__ import annotations

from comfygate.contracts.canonical import canonical_json, workflow_version
from comfygate.contracts.check import check_workflows
from comfygate.contracts.cost import FREE, Cost
from comfygate.contracts.form import form_fields
from comfygate.contracts.loader import (
    CONTRACT_FILE,
    GRAPH_FILE,
    load_workflow,
    load_workflows,
)
from comfygate.contracts.metaschema import MAX_SAFE_INTEGER, META_SCHEMA, RESERVED
from comfygate.contracts.model import Binding, Parameter, Workflow
from comfygate.contracts.object_info import validate_against_object_info
from comfygate.contracts.params import image_bindings, patch_graph, validate_params

__all__ = [
    "CONTRACT_FILE",
    "FREE",
    "GRAPH_FILE",
    "MAX_SAFE_INTEGER",
    "META_SCHEMA",
    "RESERVED",
    "Binding",
    "Cost",
    "Parameter",
    "Workflow",
    "canonical_json",
    "check_workflows",
    "form_fields",
    "image_bindings",
    "load_workflow",
    "load_workflows",
    "patch_graph",
    "validate_against_object_info",
    "validate_params",
    "workflow_version",
]
