from __future__ import annotations

from pathlib import Path

from comfygate.sim.specs import CHECKPOINTS, NodeSpecs
from tests.recordings import object_info


def test_entries_equal_the_real_object_info(tmp_path: Path) -> None:
    real = object_info()
    mine = NodeSpecs(tmp_path).object_info()
    assert len(mine) == 16
    for name, entry in mine.items():
        if name == "CheckpointLoaderSimple":
            assert entry["input"]["required"]["ckpt_name"][0] == list(CHECKPOINTS)
            entry = {**entry, "input": real[name]["input"]}
        if name == "LoadImage":
            assert entry["input"]["required"]["image"][0] == []
            entry = {**entry, "input": real[name]["input"]}
        assert entry == real[name], name


def test_load_image_lists_images_in_the_input_folder(tmp_path: Path) -> None:
    for name in ("b.png", "a.webp", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    specs = NodeSpecs(tmp_path)
    assert specs.input_types("LoadImage")["required"]["image"][0] == ["a.webp", "b.png"]
    assert specs.info("EmptyImage")["output"] == ["IMAGE"]
    assert "NoSuchNode" not in specs and specs.is_output("PreviewAny")
