"""The node classes the simulator can run, doing real image work with Pillow.

Image nodes follow ComfyUI's semantics on Pillow images and run at Pillow's real speed in a
worker thread. The Stable Diffusion chain is a stand-in: the loader, the text encoder and
the empty latent only carry their parameters along, KSampler spends ``step_ms`` per step
reporting progress and previews, and VAEDecode draws a picture that depends only on the
seed, the prompt text and the checkpoint.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageFilter, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from comfygate.sim import images
from comfygate.sim.images import Batch

UI = dict[str, list[Any]]
Result = tuple[tuple[Any, ...], UI | None]

TEMP_LETTERS = "abcdefghijklmnopqrstupvxyz"  # sic: ComfyUI's PreviewImage alphabet


@dataclass(frozen=True)
class Model:
    name: str


@dataclass(frozen=True)
class Clip:
    name: str


@dataclass(frozen=True)
class Vae:
    name: str


@dataclass(frozen=True)
class Conditioning:
    text: str
    model: str


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch_size: int
    seed: int | None = None
    text: str = ""
    model: str = ""


@dataclass(frozen=True)
class Preview:
    """A sampler preview: JPEG bytes, as ComfyUI's latent previewer sends them."""

    jpeg: bytes


@dataclass
class NodeContext:
    """What a running node may use besides its inputs."""

    node_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    root: str
    now: datetime
    rng: random.Random
    step_ms: float
    progress: Callable[[int, int, Preview | None], Awaitable[None]]
    """Reports one progress tick; raises if the prompt was interrupted."""
    send_text: Callable[[str], None]
    """ComfyUI's ``send_progress_text``: a type-3 binary frame (thread-safe)."""
    hidden: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dir(self) -> str:
        return os.path.join(self.root, "input")

    @property
    def output_dir(self) -> str:
        return os.path.join(self.root, "output")

    @property
    def temp_dir(self) -> str:
        return os.path.join(self.root, "temp")


NodeFn = Callable[[NodeContext, dict[str, Any]], Awaitable[Result]]


def _blocking(fn: Callable[[NodeContext, dict[str, Any]], Result]) -> NodeFn:
    """Run Pillow work in a thread so the server keeps answering meanwhile."""

    async def run(ctx: NodeContext, inputs: dict[str, Any]) -> Result:
        return await asyncio.to_thread(fn, ctx, inputs)

    return run


# -- image nodes --------------------------------------------------------------------------


def empty_image(ctx: NodeContext, i: dict[str, Any]) -> Result:
    color = i.get("color", 0)
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    img = Image.new("RGB", (i["width"], i["height"]), rgb)
    return ([img.copy() for _ in range(i.get("batch_size", 1))],), None


def load_image(ctx: NodeContext, i: dict[str, Any]) -> Result:
    name: str = i["image"]
    base = ctx.input_dir
    for tag, folder in (("[output]", ctx.output_dir), ("[input]", base), ("[temp]", ctx.temp_dir)):
        if name.endswith(tag):
            name, base = name[: -(len(tag) + 1)], folder
            break
    img = Image.open(os.path.join(base, name))
    frames: Batch = []
    masks: Batch = []
    size = None
    for frame in ImageSequence.Iterator(img):
        frame = ImageOps.exif_transpose(frame)
        if frame.mode == "I":
            frame = frame.point(lambda v: v * (1 / 255))
        rgb = frame.convert("RGB")
        if size is None:
            size = rgb.size
        if rgb.size != size:
            continue
        if "A" in frame.getbands():
            mask = ImageOps.invert(frame.getchannel("A"))
        elif frame.mode == "P" and "transparency" in frame.info:
            mask = ImageOps.invert(frame.convert("RGBA").getchannel("A"))
        else:
            mask = Image.new("L", (64, 64), 0)
        frames.append(rgb)
        masks.append(mask)
    if len(frames) > 1 and img.format == "MPO":
        frames, masks = frames[:1], masks[:1]
    return (frames, masks), None


def image_invert(ctx: NodeContext, i: dict[str, Any]) -> Result:
    return (images.invert(i["image"]),), None


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def image_scale(ctx: NodeContext, i: dict[str, Any]) -> Result:
    batch: Batch = i["image"]
    width, height = i["width"], i["height"]
    if width == 0 and height == 0:
        return (batch,), None
    old_w, old_h = batch[0].size
    if width == 0:
        width = max(1, round(old_w * height / old_h))
    elif height == 0:
        height = max(1, round(old_h * width / old_w))
    box = None
    if i["crop"] == "center":
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        box = (x, y, old_w - x, old_h - y)
    method = _RESAMPLE[i["upscale_method"]]
    return ([img.resize((width, height), method, box=box) for img in batch],), None


def image_blur(ctx: NodeContext, i: dict[str, Any]) -> Result:
    batch: Batch = i["image"]
    if i["blur_radius"] == 0:
        return (batch,), None
    blur = ImageFilter.GaussianBlur(radius=min(float(i["sigma"]), float(i["blur_radius"])))
    return ([img.filter(blur) for img in batch],), None


def get_image_size(ctx: NodeContext, i: dict[str, Any]) -> Result:
    batch: Batch = i["image"]
    width, height = batch[0].size
    ctx.send_text(f"width: {width}, height: {height}\n batch size: {len(batch)}")
    return (width, height, len(batch)), None


def _save(ctx: NodeContext, batch: Batch, prefix: str, folder: str, kind: str, level: int) -> UI:
    width, height = batch[0].size
    full, filename, counter, subfolder, _ = images.save_path(prefix, folder, width, height, ctx.now)
    results = []
    for number, img in enumerate(batch):
        info = PngInfo()
        info.add_text("prompt", json.dumps(ctx.prompt))
        for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
            info.add_text(key, json.dumps(value))
        name = f"{filename.replace('%batch_num%', str(number))}_{counter:05}_.png"
        img.save(os.path.join(full, name), pnginfo=info, compress_level=level)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"images": results}


def save_image(ctx: NodeContext, i: dict[str, Any]) -> Result:
    prefix = i.get("filename_prefix", "ComfyUI")
    return (), _save(ctx, i["images"], prefix, ctx.output_dir, "output", 4)


def preview_image(ctx: NodeContext, i: dict[str, Any]) -> Result:
    suffix = "".join(ctx.rng.choice(TEMP_LETTERS) for _ in range(5))
    return (), _save(ctx, i["images"], f"ComfyUI_temp_{suffix}", ctx.temp_dir, "temp", 1)


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


def save_animated_webp(ctx: NodeContext, i: dict[str, Any]) -> Result:
    batch: Batch = i["images"]
    width, height = batch[0].size
    full, filename, counter, subfolder, _ = images.save_path(
        i["filename_prefix"], ctx.output_dir, width, height, ctx.now
    )
    exif = batch[0].getexif()
    exif[0x0110] = f"prompt:{json.dumps(ctx.prompt)}"
    tag = 0x010F
    for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        exif[tag] = f"{key}:{json.dumps(value)}"
        tag -= 1
    name = f"{filename}_{counter:05}_.webp"
    batch[0].save(
        os.path.join(full, name),
        save_all=True,
        duration=int(1000.0 / i["fps"]),
        append_images=batch[1:],
        exif=exif,
        lossless=i["lossless"],
        quality=i["quality"],
        method=_WEBP_METHODS.get(i["method"]),
    )
    result = {"filename": name, "subfolder": subfolder, "type": "output"}
    return (), {"images": [result], "animated": [len(batch) != 1]}


def preview_any(ctx: NodeContext, i: dict[str, Any]) -> Result:
    source = i.get("source")
    value = "None"
    if isinstance(source, str):
        value = source
    elif isinstance(source, int | float | bool):
        value = str(source)
    elif source is not None:
        try:
            value = json.dumps(source)
        except (TypeError, ValueError):
            value = images.describe(source)
    return (), {"text": [value]}


# -- the Stable Diffusion stand-ins ------------------------------------------------------------


def checkpoint_loader(ctx: NodeContext, i: dict[str, Any]) -> Result:
    name = i["ckpt_name"]
    return (Model(name), Clip(name), Vae(name)), None


def clip_text_encode(ctx: NodeContext, i: dict[str, Any]) -> Result:
    clip: Clip = i["clip"]
    return (Conditioning(str(i["text"]), clip.name),), None


def empty_latent(ctx: NodeContext, i: dict[str, Any]) -> Result:
    return (Latent(i["width"], i["height"], i["batch_size"]),), None


def _preview(seed: int, text: str, model: str, width: int, height: int, amount: float) -> Preview:
    final = images.picture(seed, text, model, width, height)
    mixed = Image.blend(images.noise(seed, width, height), final, amount)
    buf = io.BytesIO()
    mixed.save(buf, format="JPEG", quality=95)
    return Preview(buf.getvalue())


async def ksampler(ctx: NodeContext, i: dict[str, Any]) -> Result:
    model: Model = i["model"]
    positive: Conditioning = i["positive"]
    latent: Latent = i["latent_image"]
    steps: int = i["steps"]
    seed: int = i["seed"]
    # Previews have the latent's size (an eighth of the picture), like latent2rgb's.
    pw, ph = max(1, latent.width // 8), max(1, latent.height // 8)
    for step in range(1, steps + 1):
        if ctx.step_ms > 0:
            await asyncio.sleep(ctx.step_ms / 1000)
        preview = await asyncio.to_thread(
            _preview, seed, positive.text, model.name, pw, ph, step / steps
        )
        await ctx.progress(step, steps, preview)
    result = Latent(latent.width, latent.height, latent.batch_size, seed, positive.text, model.name)
    return (result,), None


def vae_encode(ctx: NodeContext, i: dict[str, Any]) -> Result:
    batch: Batch = i["pixels"]
    width, height = batch[0].size
    # The latent keeps only the size, rounded down to the VAE's factor of 8.
    return (Latent(max(8, width // 8 * 8), max(8, height // 8 * 8), len(batch)),), None


def vae_decode(ctx: NodeContext, i: dict[str, Any]) -> Result:
    latent: Latent = i["samples"]
    width, height = max(8, latent.width // 8 * 8), max(8, latent.height // 8 * 8)
    if latent.seed is None:
        # An unsampled latent decodes to a flat grey, like zeros through a real VAE.
        return ([Image.new("RGB", (width, height), (128, 128, 128))] * latent.batch_size,), None
    batch = [
        images.picture(latent.seed + n, latent.text, latent.model, width, height)
        for n in range(latent.batch_size)
    ]
    return (batch,), None


NODES: dict[str, NodeFn] = {
    "EmptyImage": _blocking(empty_image),
    "LoadImage": _blocking(load_image),
    "ImageInvert": _blocking(image_invert),
    "ImageScale": _blocking(image_scale),
    "ImageBlur": _blocking(image_blur),
    "GetImageSize": _blocking(get_image_size),
    "SaveImage": _blocking(save_image),
    "PreviewImage": _blocking(preview_image),
    "SaveAnimatedWEBP": _blocking(save_animated_webp),
    "PreviewAny": _blocking(preview_any),
    "CheckpointLoaderSimple": _blocking(checkpoint_loader),
    "CLIPTextEncode": _blocking(clip_text_encode),
    "EmptyLatentImage": _blocking(empty_latent),
    "KSampler": ksampler,
    "VAEDecode": _blocking(vae_decode),
    "VAEEncode": _blocking(vae_encode),
}
