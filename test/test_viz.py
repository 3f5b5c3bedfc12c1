"""The before | after | removed PNG: each removed event drawn in its stage's colour."""
import cv2
import numpy as np

from eventfx_core.events import Events
from eventfx_core.pipeline import REMOVED_RANGE
from eventfx_core.viz import GRAY, PALETTE, before_after_png, removed_frame


def _events(xs, ys, w=8, h=6):
    n = len(xs)
    return Events.from_arrays(np.arange(n), np.array(xs), np.array(ys), np.ones(n, np.uint8), w, h)


def test_removed_frame_colours_each_pixel_by_the_stage_that_removed_it():
    removed = _events([1, 2, 3, 3], [1, 2, 3, 3])
    img = removed_frame(removed, np.array([0, 1, 2, REMOVED_RANGE]))
    assert tuple(img[1, 1]) == tuple(PALETTE[0][::-1])  # BGR
    assert tuple(img[2, 2]) == tuple(PALETTE[1][::-1])
    assert tuple(img[3, 3]) == tuple(GRAY[::-1])  # the later event at (3, 3) wins
    assert tuple(img[0, 0]) == (255, 255, 255)


def test_three_panels_with_a_legend(tmp_path):
    before = _events([1, 2, 5], [1, 2, 5])
    after = before[np.array([True, False, True])]
    removed = before[np.array([False, True, False])]
    two = before_after_png(tmp_path / "two.png", before, after)
    three = before_after_png(tmp_path / "three.png", before, after, removed=removed,
                             removed_stage=np.array([1]), stage_names=["stcf", "mamba"])
    a, b = cv2.imread(str(two)), cv2.imread(str(three))
    assert b.shape[1] > 1.4 * a.shape[1] and b.shape[0] > a.shape[0]  # third panel, legend line
    colour = PALETTE[1][::-1]
    panels = b[b.shape[0] - a.shape[0] + 28:]  # below the count band and the legend line
    third = panels[:, 2 * (panels.shape[1] + 8) // 3:]
    assert np.all(third == colour, axis=-1).sum() >= 80 * 80  # the removed event, in mamba's colour
