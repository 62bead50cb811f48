"""``/upload/image``, ``/upload/mask`` and ``/view``, ported from ComfyUI 0.3.64's server.

Status codes and names follow the real server, including its ``(1)`` renaming of a
same-named upload with different bytes and its empty-bodied 400/403/404 answers.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy, MultiMapping
from PIL import Image
from PIL.PngImagePlugin import PngInfo

_FORCE_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


class Folders:
    def __init__(self, root: str) -> None:
        self.input = os.path.join(root, "input")
        self.output = os.path.join(root, "output")
        self.temp = os.path.join(root, "temp")

    def by_type(self, name: str) -> str | None:
        return {"output": self.output, "temp": self.temp, "input": self.input}.get(name)

    def annotated(self, name: str) -> tuple[str, str | None]:
        for tag, folder in (
            ("[output]", self.output),
            ("[input]", self.input),
            ("[temp]", self.temp),
        ):
            if name.endswith(tag):
                return name[: -(len(tag) + 1)], folder
        return name, None


def _same_bytes(path: str, upload: web.FileField) -> bool:
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        mine = hashlib.sha256(f.read()).hexdigest()
    theirs = hashlib.sha256(upload.file.read()).hexdigest()
    upload.file.seek(0)
    return mine == theirs


def upload(
    folders: Folders,
    post: MultiDictProxy[Any],
    save: Any = None,
) -> web.Response:
    image = post.get("image")
    overwrite = post.get("overwrite")
    kind = post.get("type")
    if kind == "temp":
        folder, kind = folders.temp, "temp"
    elif kind == "output":
        folder, kind = folders.output, "output"
    else:
        folder, kind = folders.input, "input"
    if not (image and image.file):
        return web.Response(status=400)
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    subfolder = post.get("subfolder", "")
    full_folder = os.path.join(folder, os.path.normpath(subfolder))
    filepath = os.path.abspath(os.path.join(full_folder, filename))
    if os.path.commonpath((folder, filepath)) != folder:
        return web.Response(status=400)
    os.makedirs(full_folder, exist_ok=True)
    stem, ext = os.path.splitext(filename)
    duplicate = False
    if overwrite not in ("true", "1"):
        n = 1
        while os.path.exists(filepath):
            if _same_bytes(filepath, image):
                duplicate = True
                break
            filename = f"{stem} ({n}){ext}"
            filepath = os.path.join(full_folder, filename)
            n += 1
    if not duplicate:
        if save is not None:
            save(image, post, filepath)
        else:
            with open(filepath, "wb") as f:
                f.write(image.file.read())
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


def mask_saver(folders: Folders) -> Any:
    """``/upload/mask``: copy the upload's alpha onto the referenced original."""

    def save(image: web.FileField, post: MultiDictProxy[Any], filepath: str) -> None:
        ref = json.loads(post["original_ref"])
        filename, folder = folders.annotated(ref["filename"])
        if not filename or filename[0] == "/" or ".." in filename:
            return
        if folder is None:
            folder = folders.by_type(ref.get("type", "output"))
        if folder is None:
            return
        if ref.get("subfolder", "") != "":
            full = os.path.join(folder, ref["subfolder"])
            if os.path.commonpath((os.path.abspath(full), folder)) != folder:
                return
            folder = full
        original_path = os.path.join(folder, filename)
        if not os.path.isfile(original_path):
            return
        with Image.open(original_path) as original:
            metadata = PngInfo()
            for key, value in getattr(original, "text", {}).items():
                metadata.add_text(key, value)
            merged = original.convert("RGBA")
            merged.putalpha(Image.open(image.file).convert("RGBA").getchannel("A"))
            merged.save(filepath, compress_level=4, pnginfo=metadata)

    return save


def view(folders: Folders, query: MultiMapping[str]) -> web.StreamResponse:
    if "filename" not in query:
        return web.Response(status=404)
    filename, folder = folders.annotated(query["filename"])
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if folder is None:
        folder = folders.by_type(query.get("type", "output"))
    if folder is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full = os.path.join(folder, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full), folder)) != folder:
            return web.Response(status=403)
        folder = full
    filename = os.path.basename(filename)
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        return web.Response(status=404)
    disposition = {"Content-Disposition": f'filename="{filename}"'}
    channel = query.get("channel", "rgba")
    if "preview" in query:
        parts = query["preview"].split(";")
        fmt = parts[0]
        if fmt not in ("webp", "jpeg") or "a" in query.get("channel", ""):
            fmt = "webp"
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        with Image.open(path) as img:
            out = img.convert("RGB") if fmt == "jpeg" or channel == "rgb" else img
            buf = io.BytesIO()
            out.save(buf, format=fmt, quality=quality)
        return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
    if channel == "rgb":
        with Image.open(path) as img:
            rgb = Image.merge("RGB", img.split()[:3]) if img.mode == "RGBA" else img.convert("RGB")
            buf = io.BytesIO()
            rgb.save(buf, format="PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
    if channel == "a":
        with Image.open(path) as img:
            alpha = img.split()[3] if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            buf = io.BytesIO()
            out.save(buf, format="PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in _FORCE_DOWNLOAD:
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})
