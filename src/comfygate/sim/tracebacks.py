"""Traceback lines shaped like the ones a real ComfyUI 0.3.64 puts in its error bodies.

The simulator cannot show its own frames (they would name comfygate files), so it shows
the frames the real server shows at the same failure site, rooted at the simulator's
data folder, which plays the part of ``<comfy_root>``.
"""

from __future__ import annotations

_CALL_FROM_PROMPT = (
    '  File "{root}/execution.py", line 1010, in validate_prompt\n'
    "    m = await validate_inputs(prompt_id, prompt, o, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)
_CALL_FROM_INPUTS = (
    '  File "{root}/execution.py", line 808, in validate_inputs\n'
    "    r = await validate_inputs(prompt_id, prompt, o_id, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)
LOOKUP_LINKED_NODE = (
    '  File "{root}/execution.py", line 788, in validate_inputs\n'
    "    o_class_type = prompt[o_id]['class_type']\n"
    "                   ~~~~~~^^^^^^\n"
)
LOOKUP_OUTPUT_SLOT = (
    '  File "{root}/execution.py", line 790, in validate_inputs\n'
    "    received_type = r[val[1]]\n"
    "                    ~^^^^^^^^\n"
)


def _awaited(code: str) -> str:
    """A source line with Python 3.11's carets under its awaited call."""
    col = code.index("await ")
    return f"{code}\n{' ' * col}{'^' * (len(code) - col)}\n"


_EXECUTE = (
    '  File "{root}/execution.py", line 496, in execute\n'
    + _awaited(
        "    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data("
        "prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, "
        "pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)"
    ),
    '  File "{root}/execution.py", line 315, in get_output_data\n'
    + _awaited(
        "    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, "
        "input_data_all, obj.FUNCTION, allow_interrupt=True, "
        "execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
        "hidden_inputs=hidden_inputs)"
    ),
    '  File "{root}/execution.py", line 289, in _async_map_node_over_list\n'
    "    await process_inputs(input_dict, i)\n",
    '  File "{root}/execution.py", line 277, in process_inputs\n'
    "    result = f(**inputs)\n"
    "             ^^^^^^^^^^^\n",
)

NODE_FRAMES: dict[str, tuple[str, int, str]] = {
    # class_type: (module file, line, function) of the node's entry point in 0.3.64
    "CheckpointLoaderSimple": ("nodes.py", 573, "load_checkpoint"),
    "CLIPTextEncode": ("nodes.py", 77, "encode"),
    "VAEDecode": ("nodes.py", 294, "decode"),
    "EmptyLatentImage": ("nodes.py", 1181, "generate"),
    "KSampler": ("nodes.py", 1525, "sample"),
    "SaveImage": ("nodes.py", 1606, "save_images"),
    "PreviewImage": ("nodes.py", 1606, "save_images"),
    "LoadImage": ("nodes.py", 1647, "load_image"),
    "ImageScale": ("nodes.py", 1804, "upscale"),
    "ImageInvert": ("nodes.py", 1840, "invert"),
    "EmptyImage": ("nodes.py", 1877, "generate"),
    "ImageBlur": ("comfy_extras/nodes_post_processing.py", 95, "execute"),
    "SaveAnimatedWEBP": ("comfy_extras/nodes_images.py", 153, "save_images"),
    "GetImageSize": ("comfy_extras/nodes_images.py", 582, "get_size"),
    "PreviewAny": ("comfy_extras/nodes_preview_any.py", 27, "main"),
}

_NODE_SOURCE = {
    "LoadImage": "    img = node_helpers.pillow(Image.open, image_path)\n"
    "          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
}


def validation_frames(root: str, *, from_prompt: bool, site: str) -> list[str]:
    """The two frames of an exception raised while checking one linked input."""
    caller = _CALL_FROM_PROMPT if from_prompt else _CALL_FROM_INPUTS
    return [caller.format(root=root), site.format(root=root)]


def execution_frames(root: str, class_type: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The frames of an exception raised inside a node's function while it ran."""
    path, line, function = NODE_FRAMES.get(class_type, ("nodes.py", 1, "run"))
    source = _NODE_SOURCE.get(class_type, "    ...\n")
    node = f'  File "{{root}}/{path}", line {line}, in {function}\n{source}'
    return [frame.format(root=root) for frame in (*_EXECUTE, node, *extra)]


PIL_OPEN = (
    '  File "{root}/node_helpers.py", line 31, in pillow\n    x = fn(arg)\n        ^^^^^^^\n',
    '  File "<comfy_venv>/lib/python3.11/site-packages/PIL/Image.py", line 3730, in open\n'
    "    raise UnidentifiedImageError(msg)\n",
)
"""Frames below LoadImage when Pillow cannot read the file."""
