"""Pictures people would rather look at than numbers: event frames before and after, and what
was removed, coloured by the stage that removed it (the node's live view uses the same colours)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .events import Events, event_frame
from .pipeline import REMOVED_RANGE as OUTSIDE  # the stage index of events outside the sensor

# Colour (RGB) of the i-th stage in the "removed" panels, in pipeline order (then fallback stages).
PALETTE = np.array([(230, 25, 75), (0, 130, 200), (255, 225, 25), (60, 180, 75), (245, 130, 48),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230)], np.uint8)
GRAY = np.array((128, 128, 128), np.uint8)  # removed for lying outside the sensor


def render_frame(ev: Events, clip: int = 3) -> np.ndarray:
    """BGR image of an event frame: ON events blue, OFF events red, white background."""
    f = np.clip(event_frame(ev), -clip, clip).astype(np.float32) / clip
    img = np.full((ev.height, ev.width, 3), 255, np.uint8)
    on, off = np.clip(f, 0, 1), np.clip(-f, 0, 1)
    img[..., 0] = (255 * (1 - off)).astype(np.uint8)  # B survives ON
    img[..., 1] = (255 * (1 - np.maximum(on, off))).astype(np.uint8)
    img[..., 2] = (255 * (1 - on)).astype(np.uint8)  # R survives OFF
    return img


def removed_frame(removed: Events, stage: np.ndarray) -> np.ndarray:
    """BGR image of removed events on white, each pixel in the colour of the stage that removed
    its latest event (``stage``: index into ``PALETTE`` per event; ``OUTSIDE``: gray)."""
    img = np.full((removed.height, removed.width, 3), 255, np.uint8)
    inside = (removed.x < removed.width) & (removed.y < removed.height)
    st = np.asarray(stage, np.int64)[inside]
    rgb = PALETTE[st % len(PALETTE)]
    rgb[st == OUTSIDE] = GRAY
    img[removed.y[inside], removed.x[inside]] = rgb[:, ::-1]  # events in time order: latest wins
    return img


def _label(band: np.ndarray, text: str, x: int, colour=(0, 0, 0)) -> int:
    """Write ``text`` at ``x`` in ``band``; returns the x after it."""
    cv2.putText(band, text, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return x + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]


def before_after_png(path: str | Path, before: Events, after: Events, title: str = "",
                     removed: Events | None = None, removed_stage: np.ndarray | None = None,
                     stage_names: list[str] | tuple[str, ...] = ()) -> Path:
    """Write a side-by-side PNG: input events | kept events (same time span), with counts, and,
    when ``removed`` is given, a third panel of the removed events coloured by stage (a legend
    line names the colours: ``stage_names[i]`` is ``PALETTE[i]``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = [render_frame(before), render_frame(after)]
    if removed is not None:
        panels.append(removed_frame(removed, removed_stage))
    scale = max(1, 480 // max(before.height, 1))
    if scale > 1:
        panels = [cv2.resize(p, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                  for p in panels]
    gap = np.full((panels[0].shape[0], 8, 3), 128, np.uint8)
    parts = [panels[0]]
    for p in panels[1:]:
        parts += [gap, p]
    img = np.concatenate(parts, axis=1)
    pw = panels[0].shape[1] + 8
    band = np.full((28, img.shape[1], 3), 255, np.uint8)
    _label(band, f"before: {len(before):,} events", 6)
    _label(band, f"after: {len(after):,} events ({100.0 * len(after) / max(len(before), 1):.1f} %)",
           pw + 6)
    if removed is not None:
        _label(band, f"removed: {len(removed):,} events, by stage", 2 * pw + 6)
    bands = [band]
    if removed is not None and stage_names:
        legend = np.full((24, img.shape[1], 3), 255, np.uint8)
        x = _label(legend, "removed by:", 6) + 8
        for i, name in enumerate(stage_names):
            x = _label(legend, name, x, tuple(int(c) for c in PALETTE[i % len(PALETTE)][::-1])) + 12
        bands.append(legend)
    if title:
        top = np.full((24, img.shape[1], 3), 255, np.uint8)
        _label(top, title, 6)
        bands.insert(0, top)
    if not cv2.imwrite(str(path), np.concatenate([*bands, img], axis=0)):
        raise OSError(f"could not write {path}")
    return path
