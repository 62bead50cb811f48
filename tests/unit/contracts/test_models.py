"""The model files a graph needs and a ComfyUI has, by the same loader-input rule."""

from __future__ import annotations

from comfygate.contracts.models import models_available, models_needed
from tests.recordings import object_info


def test_a_graph_needs_the_files_its_loaders_name() -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": "a.safetensors", "model": ["4", 0]},
        },
        "6": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5.safetensors"}},
        "3": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "seed": 1}},
    }
    assert models_needed(graph) == ("a.safetensors", "sd15.safetensors", "t5.safetensors")
    assert models_needed({"1": {"class_type": "SaveImage", "inputs": {}}}) == ()


def test_a_comfyui_has_the_files_its_loaders_list() -> None:
    info = {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.ckpt", "b.ckpt"]]}}},
        "VAELoader": {"input": {"required": {"vae_name": ["COMBO", {"options": ["v.pt"]}]}}},
        "KSampler": {"input": {"required": {"sampler_name": [["euler"]]}}},
    }
    assert models_available(info) == {"a.ckpt", "b.ckpt", "v.pt"}


def test_the_recorded_object_info_lists_config_files_but_no_weights() -> None:
    have = models_available(object_info())
    assert "v1-inference.yaml" in have  # CheckpointLoader's config_name choices
    assert not any(name.endswith(".safetensors") for name in have)  # no weights installed
