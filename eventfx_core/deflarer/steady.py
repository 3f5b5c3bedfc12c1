"""A moving steady lamp: found by its core's bursts and its halo's motion polarity, tracked.

A steady lamp makes glare events only where it moves (or the camera does): a pixel fires as the
lamp's light at it rises or falls by the contrast threshold (the DVS model of Lichtsteiner et
al., IEEE JSSC 2008). So, per closed window:

1. burst pixels: pixels firing at least ``burst`` events of one polarity (the lamp's core
   passing: ON as it arrives, OFF as it leaves);
2. candidates: ``CELL_PX`` cells whose 3x3 cells hold at least ``pixels`` burst pixels (the
   local maxima of that count); the centre, the mean of those burst pixels moved by mean shift
   (``CENTRE_PX``; Comaniciu and Meer, IEEE TPAMI 2002) to their densest spot; the direction,
   from the mean of its OFF burst pixels to that of its ON ones (a candidate needs both);
3. halo test: a bright thing moving fires ON ahead of it and OFF behind it, so each event from
   ``CELL_PX`` to ``reach_px`` of the centre agrees by ``a = polarity x cos(offset, direction)``
   (the motion-polarity cue of issue 14); the candidate stays when the mean ``a`` is at least
   ``halo`` and ``sum a >= z sqrt(sum a^2)`` (a sign test, as the phase lock's);
4. track: a candidate within ``match_px`` of one in the window before continues its track (a
   lamp stays; a passing edge does not); one on a track of ``windows`` windows running, the
   look-ahead's later windows counted, is a lamp;
5. glare: an event from ``core_px`` (the lamp itself, kept) to ``reach_px`` of a lamp's centre
   with ``a > 0``.

Sums of ``a`` are exact (``math.fsum``) wherever a test is close to its bound, and distances are
compared squared, so the fast path and :func:`steady_reference` (the plain version, the test
oracle) decide alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CELL_PX = 8  # candidate cell side; also the inner radius of the halo ring
CENTRE_PX = 6.0  # mean-shift radius of the centre
SHIFT_STEPS = 5


@dataclass(frozen=True)
class Candidate:
    cy: float
    cx: float
    uy: float  # unit direction of motion (OFF -> ON)
    ux: float


def agreement(cand: Candidate, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared distance from the centre, polarity x cos(offset, direction)) of each event."""
    dy, dx = y.astype(np.float64) - cand.cy, x.astype(np.float64) - cand.cx
    r2 = dy * dy + dx * dx
    r = np.sqrt(r2)
    sign = np.where(p > 0, 1.0, -1.0)
    a = np.where(r2 > 0, sign * (dy * cand.uy + dx * cand.ux) / np.where(r2 > 0, r, 1.0), 0.0)
    return r2, a


def _candidate(by: np.ndarray, bx: np.ndarray, bp: np.ndarray) -> Candidate | None:
    """Centre (mean shift) and direction of the burst pixels (by, bx, polarity bp) of one cell block."""
    cy, cx = float(by.sum()) / len(by), float(bx.sum()) / len(bx)
    near = np.ones(len(by), bool)
    for _ in range(SHIFT_STEPS):
        d2 = (by - cy) ** 2 + (bx - cx) ** 2
        near = d2 <= CENTRE_PX * CENTRE_PX
        if not near.any():
            return None
        cy, cx = float(by[near].sum()) / int(near.sum()), float(bx[near].sum()) / int(near.sum())
    on, off = near & (bp > 0), near & (bp == 0)
    if not on.any() or not off.any():
        return None
    vy = float(by[on].sum()) / int(on.sum()) - float(by[off].sum()) / int(off.sum())
    vx = float(bx[on].sum()) / int(on.sum()) - float(bx[off].sum()) / int(off.sum())
    n = math.sqrt(vy * vy + vx * vx)
    if n == 0:
        return None
    return Candidate(cy, cx, vy / n, vx / n)


def _halo_ok(cand: Candidate, x, y, p, reach_px: float, halo: float, z: float) -> bool:
    r2, a = agreement(cand, x, y, p)
    ring = (r2 >= CELL_PX * CELL_PX) & (r2 < reach_px * reach_px)
    if not ring.any():
        return False
    a = a[ring]
    n = len(a)
    # numpy's sums are off the exact ones by far less than 1e-6 (n) (|a| <= 1); only a test that
    # close to its bound needs the exact sums (math.fsum, as the reference takes)
    s, q = float(a.sum()), float((a * a).sum())
    tol = 1e-6 * (n + 1)
    if abs(s - halo * n) <= tol or abs(s - z * math.sqrt(max(q, 1.0))) <= tol * (1 + z):
        s, q = math.fsum(a.tolist()), math.fsum((a * a).tolist())
    return s >= halo * n and s >= z * math.sqrt(max(q, 1.0))


def burst_pixels(upix: np.ndarray, n_on: np.ndarray, count: np.ndarray, burst: int) -> np.ndarray:
    """Step 1: ``pixel * 2 + polarity`` (ascending) of the pixels firing at least ``burst`` events
    of one polarity, from the window's distinct pixels ``upix``, their ON and all events."""
    return np.sort(np.concatenate([upix[count - n_on >= burst] * 2, upix[n_on >= burst] * 2 + 1]))


def candidates(b: np.ndarray, pix: np.ndarray, p: np.ndarray, width: int, height: int, pixels: int,
               reach_px: float, halo: float, z: float) -> list[Candidate]:
    """The window's lamp candidates (steps 2-3), in cell order (row, then column), from its burst
    pixels ``b`` (:func:`burst_pixels`) and its events sorted by pixel (``pix = y * width + x``,
    ascending; ``p`` in that order: the gate's sort). Rows of the sensor are runs of ``pix``, so
    the halo test reads only the events of the rows within reach (a search, no sort); the burst
    pixels are grouped by cell once."""
    if len(b) < pixels:  # no cell block can hold enough
        return []
    bpix, bp = b // 2, (b % 2).astype(np.int8)
    by, bx = bpix // width, bpix % width
    hb, wb = -(-height // CELL_PX), -(-width // CELL_PX)
    g = np.zeros((2, hb + 2, wb + 2), np.int64)  # burst pixels per cell, OFF and ON
    np.add.at(g, (bp, by // CELL_PX + 1, bx // CELL_PX + 1), 1)
    rows3 = g[:, :-2] + g[:, 1:-1] + g[:, 2:]  # 3x3 sums, separably: rows, then columns
    s2 = rows3[:, :, :-2] + rows3[:, :, 1:-1] + rows3[:, :, 2:]
    s = s2[0] + s2[1]
    sp = np.full((hb + 2, wb + 2), -1, np.int64)
    sp[1:-1, 1:-1] = s
    rmax = np.maximum(np.maximum(sp[:-2], sp[1:-1]), sp[2:])  # 3x3 maximum, separably
    peak = np.maximum(np.maximum(rmax[:, :-2], rmax[:, 1:-1]), rmax[:, 2:])
    both = (s2[0] > 0) & (s2[1] > 0)  # a candidate needs both signs (_candidate): skip the rest unread
    cell = (by // CELL_PX) * wb + bx // CELL_PX
    by_cell = np.argsort(cell, kind="stable")  # burst pixels grouped by cell
    cell_sorted = cell[by_cell]
    out = []
    for r, c in zip(*np.nonzero((s >= pixels) & (s >= peak) & both)):
        m = np.concatenate([by_cell[np.searchsorted(cell_sorted, row * wb + max(c - 1, 0)):
                                    np.searchsorted(cell_sorted, row * wb + min(c + 1, wb - 1), side="right")]
                            for row in range(max(r - 1, 0), min(r + 1, hb - 1) + 1)])
        cand = _candidate(by[m].astype(np.float64), bx[m].astype(np.float64), bp[m])
        if cand is None:
            continue
        y0, y1 = max(math.floor(cand.cy - reach_px), 0), min(math.ceil(cand.cy + reach_px), height - 1)
        band = slice(np.searchsorted(pix, y0 * width), np.searchsorted(pix, (y1 + 1) * width))
        ey, ex = np.divmod(pix[band], width)
        near = np.abs(ex - cand.cx) < reach_px
        if _halo_ok(cand, ex[near], ey[near], p[band][near], reach_px, halo, z):
            out.append(cand)
    return out


def _continues(q: Candidate, o: Candidate, match_px: float) -> bool:
    """Whether candidate ``q`` lies within ``match_px`` of ``o`` (one window apart: the same lamp)."""
    return (q.cy - o.cy) ** 2 + (q.cx - o.cx) ** 2 <= match_px * match_px


def extend(prev, prev_run, now, match_px: float) -> list[int]:
    """Windows running of each candidate of ``now`` (1 + the longest run among the candidates of
    the window before within ``match_px``; ``prev`` empty when that window is not the one before)."""
    return [1 + max([k for o, k in zip(prev, prev_run) if _continues(q, o, match_px)], default=0) for q in now]


def ahead(now: list[Candidate], later: list[list[Candidate]], match_px: float) -> list[int]:
    """For each candidate of ``now``: the longest chain of matches through the ``later``
    windows (the consecutive windows after it, oldest first)."""
    chain = [now, *later]
    fwd = [0] * len(chain[-1])
    for i in range(len(chain) - 2, -1, -1):  # from the newest window back to ``now``
        fwd = [max([k + 1 for o, k in zip(chain[i + 1], fwd) if _continues(q, o, match_px)], default=0)
               for q in chain[i]]
    return fwd


def glare(lamps: list[Candidate], x: np.ndarray, y: np.ndarray, p: np.ndarray, reach_px: float,
          core_px: float) -> np.ndarray:
    """bool per event: glare of one of ``lamps`` (step 5)."""
    out = np.zeros(len(x), bool)
    for c in lamps:
        r2, a = agreement(c, x, y, p)
        out |= (r2 < reach_px * reach_px) & (r2 >= core_px * core_px) & (a > 0)
    return out


def candidates_reference(events: list[tuple], width: int, height: int, burst: int, pixels: int, reach_px: float,
                         halo: float, z: float) -> list[Candidate]:
    """Plain version of :func:`candidates` over [(x, y, p, ...), ...]."""
    if burst < 1:
        return []
    count: dict = {}
    for x, y, p, *_ in events:
        count[(x, y, int(p > 0))] = count.get((x, y, int(p > 0)), 0) + 1
    bursts = [k for k, n in count.items() if n >= burst]
    cell: dict = {}
    for x, y, _ in bursts:
        cell[(y // CELL_PX, x // CELL_PX)] = cell.get((y // CELL_PX, x // CELL_PX), 0) + 1
    hb, wb = -(-height // CELL_PX), -(-width // CELL_PX)
    s = {(r, c): sum(cell.get((r + dy, c + dx), 0) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
         for r in range(hb) for c in range(wb)}
    ex = np.array([e[0] for e in events]); ey = np.array([e[1] for e in events])
    ep = np.array([e[2] for e in events])
    out = []
    for r in range(hb):
        for c in range(wb):
            nb = [s[(r + dy, c + dx)] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (r + dy, c + dx) in s]
            if s[(r, c)] < pixels or s[(r, c)] < max(nb):
                continue
            sel = sorted((y, x, q) for x, y, q in bursts
                         if abs(y // CELL_PX - r) <= 1 and abs(x // CELL_PX - c) <= 1)
            cy, cx = sum(v[0] for v in sel) / len(sel), sum(v[1] for v in sel) / len(sel)
            near, ok = sel, True
            for _ in range(SHIFT_STEPS):
                near = [v for v in sel if (v[0] - cy) ** 2 + (v[1] - cx) ** 2 <= CENTRE_PX * CENTRE_PX]
                if not near:
                    ok = False
                    break
                cy, cx = sum(v[0] for v in near) / len(near), sum(v[1] for v in near) / len(near)
            on = [v for v in near if v[2] == 1] if ok else []
            off = [v for v in near if v[2] == 0] if ok else []
            if not on or not off:
                continue
            vy = sum(v[0] for v in on) / len(on) - sum(v[0] for v in off) / len(off)
            vx = sum(v[1] for v in on) / len(on) - sum(v[1] for v in off) / len(off)
            n = math.sqrt(vy * vy + vx * vx)
            if n == 0:
                continue
            cand = Candidate(cy, cx, vy / n, vx / n)
            aa = []
            for x, y, q in zip(ex.tolist(), ey.tolist(), ep.tolist()):
                dy, dx = y - cy, x - cx
                r2 = dy * dy + dx * dx
                if CELL_PX * CELL_PX <= r2 < reach_px * reach_px:
                    aa.append((1.0 if q > 0 else -1.0) * (dy * cand.uy + dx * cand.ux) / math.sqrt(r2))
            if aa and math.fsum(aa) >= halo * len(aa) and \
                    math.fsum(aa) >= z * math.sqrt(max(math.fsum(v * v for v in aa), 1.0)):
                out.append(cand)
    return out


def steady_reference(windows: list[tuple[int, list[tuple]]], width: int, height: int, burst: int, pixels: int,
                     reach_px: float, halo: float, z: float, windows_run: int, match_px: float, core_px: float,
                     lookahead: int = 0) -> list[np.ndarray]:
    """Plain version over (window index, [(x, y, p, ...), ...]): per window, the glare mask of
    its events (the test oracle of the fast path in :class:`.gate.FlareGate`)."""
    found = {index: candidates_reference(events, width, height, burst, pixels, reach_px, halo, z)
             for index, events in windows}
    runs: dict = {}
    last = None
    for index, _ in windows:
        prev = found[index - 1] if last == index - 1 else []
        prev_run = runs.get(index - 1, []) if last == index - 1 else []
        runs[index] = [1 + max([k for o, k in zip(prev, prev_run)
                                if (q.cy - o.cy) ** 2 + (q.cx - o.cx) ** 2 <= match_px * match_px], default=0)
                       for q in found[index]]
        last = index
    out = []
    for index, events in windows:
        def chain(q, j, left):
            if left == 0 or j not in found:
                return 0
            return max([1 + chain(o, j + 1, left - 1) for o in found[j]
                        if (q.cy - o.cy) ** 2 + (q.cx - o.cx) ** 2 <= match_px * match_px], default=0)
        lamps = [q for q, k in zip(found[index], runs[index]) if k + chain(q, index + 1, lookahead) >= windows_run]
        mask = np.zeros(len(events), bool)
        for i, (x, y, q, *_) in enumerate(events):
            for c in lamps:
                dy, dx = y - c.cy, x - c.cx
                r2 = dy * dy + dx * dx
                if core_px * core_px <= r2 < reach_px * reach_px and r2 > 0 and \
                        (1.0 if q > 0 else -1.0) * (dy * c.uy + dx * c.ux) / math.sqrt(r2) > 0:
                    mask[i] = True
        out.append(mask)
    return out
