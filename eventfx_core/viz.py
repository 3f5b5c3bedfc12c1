"""Pictures people would rather look at than numbers: event frames before and after."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .events import Events, event_frame


def render_frame(ev: Events, clip: int = 3) -> np.ndarray:
    """BGR image of an event frame: ON events blue, OFF events red, white background."""
    f = np.clip(event_frame(ev), -clip, clip).astype(np.float32) / clip
    img = np.full((ev.height, ev.width, 3), 255, np.uint8)
    on, off = np.clip(f, 0, 1), np.clip(-f, 0, 1)
    img[..., 0] = (255 * (1 - off)).astype(np.uint8)  # B survives ON
    img[..., 1] = (255 * (1 - np.maximum(on, off))).astype(np.uint8)
    img[..., 2] = (255 * (1 - on)).astype(np.uint8)  # R survives OFF
    return img


def before_after_png(path: str | Path, before: Events, after: Events, title: str = "") -> Path:
    """Write a side-by-side PNG: input events | kept events (same time span), with counts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    left, right = render_frame(before), render_frame(after)
    scale = max(1, 480 // max(before.height, 1))
    if scale > 1:
        left = cv2.resize(left, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        right = cv2.resize(right, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    gap = np.full((left.shape[0], 8, 3), 128, np.uint8)
    img = np.concatenate([left, gap, right], axis=1)
    band = np.full((28, img.shape[1], 3), 255, np.uint8)
    label_l = f"before: {len(before):,} events"
    label_r = f"after: {len(after):,} events ({100.0 * len(after) / max(len(before), 1):.1f} %)"
    cv2.putText(band, label_l, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(band, label_r, (left.shape[1] + 14, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    if title:
        top = np.full((24, img.shape[1], 3), 255, np.uint8)
        cv2.putText(top, title, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        band = np.concatenate([top, band], axis=0)
    if not cv2.imwrite(str(path), np.concatenate([band, img], axis=0)):
        raise OSError(f"could not write {path}")
    return path
