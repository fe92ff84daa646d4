"""The static explorer: every grid frame precomputed and packed into one self-contained HTML block.

Native ``<input type=range>``, ``<select>`` and checkbox elements, and a small script (``explorer.js``,
inlined) that swaps the frame: no kernel, no CDN, no request. Without JavaScript the default frame shows.
Numeric controls, menus of numbers included, are range sliders with a value readout; categories are menus.
Every control sits in a ``<label>``, so it has an accessible name and works from the keyboard, and the
frame has a fixed size, so the page does not jump when it changes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from functools import cache
from importlib import resources
from typing import Callable, Mapping

from .controls import Control


@cache
def asset(name: str) -> str:
    """The text of a package data file of the explorer (``explorer.js``, ``explorer.css``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, read from its header."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.size


def render_frames(grid: Mapping[str, tuple], frame: Callable[..., bytes]) -> tuple[dict[str, int], list[bytes]]:
    """Draw every combination of ``grid`` with ``frame(**values)``; identical frames are stored once.

    Returns ``frames`` (key ``"i-j-k"`` of grid indices -> image index) and the distinct images.
    """
    import itertools

    names = list(grid)
    images: list[bytes] = []
    seen: dict[bytes, int] = {}
    frames: dict[str, int] = {}
    for combo in itertools.product(*(range(len(grid[k])) for k in names)):
        png = frame(**{k: grid[k][i] for k, i in zip(names, combo)})
        if png not in seen:
            seen[png] = len(images)
            images.append(png)
        frames["-".join(map(str, combo))] = seen[png]
    return frames, images


def _control_html(name: str, c: Control, grid: tuple, i: int) -> str:
    label = html.escape(c.label or name)
    key = html.escape(name)
    if c.slider:
        text = html.escape(c.format(grid[i]))
        return (f'<label>{label} <input type="range" min="0" max="{len(grid) - 1}" step="1" value="{i}" '
                f'data-control="{key}" aria-label="{label}" aria-valuetext="{text}"><output>{text}</output></label>')
    if c.kind == "choice":
        opts = "".join(f'<option value="{j}"{" selected" if j == i else ""}>{html.escape(c.format(v))}</option>'
                       for j, v in enumerate(grid))
        return f'<label>{label} <select data-control="{key}" aria-label="{label}">{opts}</select></label>'
    return f'<label><input type="checkbox" data-control="{key}"{" checked" if i else ""}> {label}</label>'


def page(controls: Mapping[str, Control], grid: Mapping[str, tuple], frames: dict[str, int], images: list[bytes],
         full: int) -> str:
    """The HTML block of a static explorer over ``grid`` (``full``: the size of the unthinned grid)."""
    uid = "lx-" + uuid.uuid4().hex[:10]
    names = list(grid)
    default_idx = [grid[k].index(controls[k].default) for k in names]
    encoded = [base64.b64encode(png).decode("ascii") for png in images]
    default = frames["-".join(map(str, default_idx))]
    width, height = png_size(images[default])
    rows = "".join(_control_html(k, controls[k], grid[k], i) for k, i in zip(names, default_idx))
    n = len(frames)
    note = f"{n} precomputed frames"
    if n < full:
        note += f" (grid thinned from {full} to {n} to keep the page light; run the notebook for every value)"
    data = {"labels": {k: [controls[k].format(v) for v in grid[k]] for k in names}, "frames": frames,
            "images": encoded}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div class="lessons-explorer" id="{uid}"><style>{asset("explorer.css")}</style>'
        f'<form class="lx-controls" onsubmit="return false">{rows}</form>'
        f'<img class="lx-frame" alt="explorer frame" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{encoded[default]}">'
        f'<p class="lx-note">{html.escape(note)}.</p>'
        f'<script type="application/json" class="lx-data">{payload}</script>'
        f"<script>{asset('explorer.js')}</script></div>"
    )
