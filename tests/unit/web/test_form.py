from __future__ import annotations

from pathlib import Path

from comfygate.contracts import load_workflows
from comfygate.web.form import FormField, build_form

WORKFLOWS = Path(__file__).resolve().parents[3] / "workflows"


def form(name: str) -> dict[str, FormField]:
    return {f.name: f for f in build_form(load_workflows(WORKFLOWS)[name])}


def test_txt2img_widgets() -> None:
    fields = form("txt2img")
    assert next(iter(fields)) == "prompt"
    assert fields["prompt"].widget == "textarea" and fields["prompt"].required
    assert fields["prompt"].value == "a lighthouse at dusk, oil painting"
    assert fields["prompt"].control_id == "f-prompt"
    width = fields["width"]
    assert (width.widget, width.step, width.slider_step) == ("number", "8", "8")
    assert (width.minimum, width.maximum, width.value) == (64, 1024, "512")
    assert fields["steps"].step == "1" and fields["steps"].integer
    assert fields["seed"].widget == "seed" and fields["seed"].value == ""
    assert fields["seed"].slider_step is None
    sampler = fields["sampler_name"]
    assert sampler.widget == "select" and sampler.advanced and "euler" in sampler.options
    assert sampler.value == "euler"


def test_floats_get_a_round_slider_step_and_free_typing() -> None:
    fields = form("img2img")
    denoise = fields["denoise"]
    assert (denoise.step, denoise.slider_step, denoise.value) == ("any", "0.01", "0.6")
    assert fields["cfg"].slider_step == "0.1" and fields["cfg"].value == "7"
    assert fields["image"].widget == "image" and fields["image"].required


def test_wide_ranges_get_no_slider() -> None:
    color = form("image-ops")["color"]
    assert color.widget == "number" and color.slider_step is None


def test_booleans_have_no_value_attribute() -> None:
    lossless = form("animated-webp")["lossless"]
    assert lossless.widget == "checkbox" and lossless.default is True and lossless.value == ""
