"""Pillow stand-ins for ComfyUI's tensors, and the file naming of its save nodes.

An IMAGE is a batch: a list of same-sized RGB images (ComfyUI: float tensor [B, H, W, 3]).
A MASK is a list of "L" images (ComfyUI: [B, H, W]).
"""

from __future__ import annotations

import os
import random
from datetime import datetime

from PIL import Image, ImageDraw, ImageOps

Batch = list[Image.Image]

SAVE_OUTSIDE_ERROR = "**** ERROR: Saving image outside the output folder is not allowed."


def describe(value: object) -> str:
    """A short stand-in for ``str(tensor)`` in error payloads and PreviewAny."""
    if isinstance(value, list) and value and all(isinstance(v, Image.Image) for v in value):
        first = value[0]
        channels = len(first.getbands())
        dims = [len(value), first.height, first.width]
        return f"tensor(shape={[*dims, channels] if channels > 1 else dims})"
    return str(value)


def save_path(
    filename_prefix: str, output_dir: str, width: int, height: int, now: datetime
) -> tuple[str, str, int, str, str]:
    """``folder_paths.get_save_image_path``: folder, name, next counter, subfolder, prefix.

    The counter is one more than the highest ``{name}_NNNNN_`` already in the folder, so
    it restarts per prefix and survives restarts, exactly like ComfyUI's scan.
    """
    if "%" in filename_prefix:
        local = now.astimezone()
        for token, value in (
            ("%width%", str(width)),
            ("%height%", str(height)),
            ("%year%", str(local.year)),
            ("%month%", f"{local.month:02}"),
            ("%day%", f"{local.day:02}"),
            ("%hour%", f"{local.hour:02}"),
            ("%minute%", f"{local.minute:02}"),
            ("%second%", f"{local.second:02}"),
        ):
            filename_prefix = filename_prefix.replace(token, value)
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    common = os.path.commonpath((output_dir, os.path.abspath(full_output_folder)))
    if common != output_dir:
        raise Exception(  # the real node raises a bare Exception with this text
            f"{SAVE_OUTSIDE_ERROR}\n full_output_folder: {os.path.abspath(full_output_folder)}"
            f"\n         output_dir: {output_dir}\n         commonpath: {common}"
        )
    prefix_len = len(os.path.basename(filename_prefix))
    try:
        names = os.listdir(full_output_folder)
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        return full_output_folder, filename, 1, subfolder, filename_prefix
    counter = 0
    for name in names:
        prefix = name[: prefix_len + 1]
        if os.path.normcase(prefix[:-1]) != os.path.normcase(filename) or prefix[-1:] != "_":
            continue
        try:
            digits = int(name[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        counter = max(counter, digits)
    return full_output_folder, filename, counter + 1, subfolder, filename_prefix


def _rgb(rng: random.Random, low: int = 0, high: int = 255) -> tuple[int, int, int]:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def picture(seed: int, text: str, model: str, width: int, height: int) -> Image.Image:
    """A deterministic picture for a (seed, prompt, model): same inputs, same pixels."""
    rng = random.Random(f"{model}\x00{seed}\x00{text}")
    gradient = Image.linear_gradient("L").resize((width, height))
    if rng.random() < 0.5:
        gradient = gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    img = ImageOps.colorize(gradient, _rgb(rng, 0, 120), _rgb(rng, 100, 255))
    draw = ImageDraw.Draw(img)
    scale = min(width, height)
    for _ in range(rng.randint(5, 9)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * scale
        box = (cx - r, cy - r, cx + r, cy + r)
        shape = rng.random()
        if shape < 0.5:
            draw.ellipse(box, fill=_rgb(rng))
        elif shape < 0.8:
            draw.rectangle(box, fill=_rgb(rng))
        else:
            points = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(3)]
            draw.polygon(points, fill=_rgb(rng))
    if text and scale >= 64:
        label = text if len(text) <= 40 else text[:39] + "…"
        draw.text((4, height - 14), label, fill=(255, 255, 255))
    return img


def noise(seed: int, width: int, height: int) -> Image.Image:
    """Deterministic RGB noise: the start of a simulated denoising."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))


def invert(batch: Batch) -> Batch:
    return [ImageOps.invert(img) for img in batch]
