from __future__ import annotations

from comfygate.contracts import form_fields, load_workflows

from .conftest import WORKFLOWS


def test_form_fields_of_txt2img() -> None:
    fields = {f["name"]: f for f in form_fields(load_workflows(WORKFLOWS)["txt2img"])}
    assert next(iter(fields)) == "prompt"
    assert fields["prompt"]["widget"] == "textarea" and fields["prompt"]["required"]
    assert fields["width"]["widget"] == "number" and fields["width"]["step"] == 8
    assert fields["steps"]["step"] == 1 and fields["steps"]["maximum"] == 50
    assert fields["seed"]["random"] and not fields["seed"]["required"]
    assert fields["sampler_name"]["widget"] == "select" and fields["sampler_name"]["advanced"]
    assert fields["cfg"]["title"] == "Guidance (CFG)"


def test_form_fields_of_other_kinds() -> None:
    loaded = load_workflows(WORKFLOWS)
    img = {f["name"]: f for f in form_fields(loaded["img2img"])}
    assert img["image"]["widget"] == "image" and img["image"]["required"]
    webp = {f["name"]: f for f in form_fields(loaded["animated-webp"])}
    assert webp["lossless"]["widget"] == "checkbox" and webp["lossless"]["default"] is True
