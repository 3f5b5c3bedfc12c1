"""Phase lock: does an event fire in step with the flickering lamp near it?

A lamp on mains or PWM power brightens and dims with its period, and its glare (halo, rays,
streaks, ghosts) is its own light spread by the optics: glare events are ON while the lamp's
core brightens and OFF while it dims, at any distance from the core and whatever the lamp's
frequency, also where a pixel fires only once per period (the far halo, a ray sweeping past with
a moving lamp). A scene edge under the glare fires at its own times. The lamp's flicker shows in
the events it causes (Xu et al., "Seeing Electric Network Frequency from Events", CVPR 2023).

Per closed window (:func:`phase_agreement`): the events in the source blocks (the lamp cores the
gate found) give each source block's net polarity (ON - OFF) and event count in each of ``bins``
time bins of the window; every block sums these over the source blocks within ``radius_px`` of it
(the lamp's reach, as the gate uses it), and an event's agreement is
``net * (+1 for ON, -1 for OFF) / count`` of its block's sum in its own bin, in ``[-1, 1]``
(0 where that count is below ``min_events``: no lamp phase to compare with). The lamp's phase is
read from its own core in the same window, so nothing outside ``radius_px`` of a lamp changes an
agreement, and the value depends only on the window's events (split-invariant, decided when the
window closes). A block on a lamp's ghost line (``ghost``) beyond every lamp's reach reads the sum
over all source blocks (a ghost is some lamp's light, reflected to the far side of the centre).
:func:`phase_agreement_reference` is the plain per-event version (test oracle).

Phase-locked blocks (:func:`lock_sums`): glare fires in step with its lamp, so the agreements of a
block's events add up (``S``, while their squares add up to ``Q``); a block that holds only scene
events has agreements of either sign, and ``S / sqrt(Q)`` stays near 0 (a sign test: below 3 in
all but about 1 of 700 blocks). The gate acts only on blocks whose decayed sums over the windows
so far reach ``S >= z sqrt(max(Q, 1))`` (``gate.py``).

The lamp's centre (:func:`lamp_centres`; its core, :func:`core_events`): the light source itself
is to be kept. Per source block that holds at least as many flickering events (events of pixels that alternated at least
``each`` times in this window) in its 3x3 blocks as any of its 8 neighbours, the centroid of
those events; with ``shift`` > 0 that centre then moves ``shift`` times to the centroid of the
flickering events within ``2 * core_px`` of it (mean shift, Comaniciu and Meer, TPAMI 2002: it
climbs to the densest spot, the lamp itself, where the 3x3-block centroid is pulled towards the
blocks' middle by the part of the halo they cut off); events within ``core_px`` of such a centre
are the lamp's core. With a look-ahead, the next window's centres count too where this window
has none within ``core_px`` (:func:`with_next_centres`): in a lamp's first window its pixels have
not yet alternated ``each`` times, so that window alone may not centre it, and a moving lamp's
mean-shift centre may miss it by more than ``core_px``. A light source can be wider than
``core_px``; with ``contrast`` > 0 an event within ``2 * core_px`` of a centre is core too when
its pixel fired at least ``contrast`` times as often in the window as the pixels of the ring from
``2 * core_px`` to ``3 * core_px`` around it did on average (at least once): the source outshines
its own glare, where a smooth halo's events near the core fire about as often as those a little
farther out.
"""
from __future__ import annotations

import numpy as np


def _bins_of(t: np.ndarray, start_us: int, window_us: int, bins: int) -> np.ndarray:
    return np.clip((np.asarray(t, np.int64) - start_us) * bins // window_us, 0, bins - 1)


def phase_agreement(source: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray,
                    start_us: int, window_us: int, bins: int, min_events: int, block_px: int,
                    offsets: np.ndarray, ghost: np.ndarray | None = None) -> np.ndarray:
    """float32[n]: each event's agreement with the phase of the lamps within reach; ``source``
    bool[hb, wb] source blocks, ``offsets`` the (dy, dx) block offsets of the reach disc,
    ``ghost`` bool[hb, wb] the ghost-line blocks (beyond every reach: the sum of all sources)."""
    out = np.zeros(len(x), np.float32)
    rows, cols = np.nonzero(source)
    if not len(rows) or not len(x):
        return out
    hb, wb = source.shape
    by, bx = y.astype(np.int64) // block_px, x.astype(np.int64) // block_px
    b = _bins_of(t, start_us, window_us, bins)
    sign = np.where(np.asarray(p) > 0, 1, -1).astype(np.int64)
    sid = np.full((hb, wb), -1, np.int64)
    sid[rows, cols] = np.arange(len(rows))
    k = sid[by, bx]
    core = k >= 0
    net = np.zeros((len(rows), bins), np.int64)
    cnt = np.zeros((len(rows), bins), np.int64)
    np.add.at(net, (k[core], b[core]), sign[core])
    np.add.at(cnt, (k[core], b[core]), 1)
    r = (rows[:, None] + offsets[None, :, 0]).ravel()
    c = (cols[:, None] + offsets[None, :, 1]).ravel()
    i = np.repeat(np.arange(len(rows)), len(offsets))
    ok = (r >= 0) & (r < hb) & (c >= 0) & (c < wb)
    gnet = np.zeros((hb, wb, bins), np.int64)
    gcnt = np.zeros((hb, wb, bins), np.int64)
    np.add.at(gnet, (r[ok], c[ok]), net[i[ok]])
    np.add.at(gcnt, (r[ok], c[ok]), cnt[i[ok]])
    if ghost is not None:  # ghost blocks beyond every lamp's reach: the sum of all the lamps
        reach = np.zeros((hb, wb), bool)
        reach[r[ok], c[ok]] = True
        far = ghost & ~reach
        gnet[far], gcnt[far] = net.sum(0), cnt.sum(0)
    e_net, e_cnt = gnet[by, bx, b], gcnt[by, bx, b]
    have = e_cnt >= max(min_events, 1)
    out[have] = (e_net[have] * sign[have] / e_cnt[have]).astype(np.float32)
    return out


def phase_agreement_reference(source: np.ndarray, events: list[tuple[int, int, int, int]], start_us: int,
                              window_us: int, bins: int, min_events: int, block_px: int,
                              radius_blocks: float, ghost: np.ndarray | None = None) -> np.ndarray:
    """Plain per-event version of :func:`phase_agreement`; ``events`` [(x, y, p, t), ...]."""
    hb, wb = source.shape
    net: dict = {}
    cnt: dict = {}
    for x, y, p, t in events:
        blk = (y // block_px, x // block_px)
        if source[blk]:
            key = blk + (min(max((t - start_us) * bins // window_us, 0), bins - 1),)
            net[key] = net.get(key, 0) + (1 if p > 0 else -1)
            cnt[key] = cnt.get(key, 0) + 1
    out = np.zeros(len(events), np.float32)
    for j, (x, y, p, t) in enumerate(events):
        r, c = y // block_px, x // block_px
        b = min(max((t - start_us) * bins // window_us, 0), bins - 1)
        n = m = 0
        near = [(rr, cc) for rr, cc in zip(*np.nonzero(source))
                if (rr - r) ** 2 + (cc - c) ** 2 <= radius_blocks * radius_blocks + 1e-9]
        if not near and ghost is not None and ghost[r, c]:
            near = list(zip(*np.nonzero(source)))  # a ghost block beyond every reach: all the lamps
        for rr, cc in near:
            n += net.get((rr, cc, b), 0)
            m += cnt.get((rr, cc, b), 0)
        if m >= max(min_events, 1):
            out[j] = np.float32(n * (1 if p > 0 else -1) / m)
    return out


def lock_sums(phase: np.ndarray, x: np.ndarray, y: np.ndarray, shape: tuple[int, int],
              block_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, Q) float64[hb, wb]: per block, the sum of its events' agreements and of their squares
    (summed in event order, as :func:`lock_sums_reference` does)."""
    a = np.asarray(phase, np.float64)
    k = (np.asarray(y, np.int64) // block_px, np.asarray(x, np.int64) // block_px)
    s, q = np.zeros(shape), np.zeros(shape)
    np.add.at(s, k, a)
    np.add.at(q, k, a * a)
    return s, q


def lock_sums_reference(phase, events: list[tuple], shape: tuple[int, int], block_px: int):
    """Plain version of :func:`lock_sums`; ``events`` [(x, y, ...), ...]."""
    s, q = np.zeros(shape), np.zeros(shape)
    for a, (x, y, *_) in zip(phase, events):
        a = float(a)
        s[y // block_px, x // block_px] += a
        q[y // block_px, x // block_px] += a * a
    return s, q


def _sum3(g: np.ndarray) -> np.ndarray:
    """Sum over each cell's 3x3 neighbourhood (zero outside)."""
    h, w = g.shape
    p = np.pad(g, 1)
    return sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))


def lamp_centres(source: np.ndarray, x: np.ndarray, y: np.ndarray, flickering: np.ndarray, block_px: int,
                 core_px: float, shift: int = 0) -> list[tuple[float, float]]:
    """(cx, cy) of every lamp centre (see the module text): per source block holding at least as
    many flickering events in its 3x3 blocks as any neighbour, their centroid, moved ``shift``
    mean-shift steps within ``2 * core_px``."""
    if not source.any() or not len(x):
        return []
    hb, wb = source.shape
    x, y = x.astype(np.int64), y.astype(np.int64)
    by, bx = y // block_px, x // block_px
    m = flickering & source[by, bx]
    cnt = np.zeros((hb, wb), np.int64)
    sx = np.zeros((hb, wb), np.int64)
    sy = np.zeros((hb, wb), np.int64)
    np.add.at(cnt, (by[m], bx[m]), 1)
    np.add.at(sx, (by[m], bx[m]), x[m])
    np.add.at(sy, (by[m], bx[m]), y[m])
    c3, x3, y3 = _sum3(cnt), _sum3(sx), _sum3(sy)
    p = np.pad(c3, 1)
    top = np.max([p[dy:dy + hb, dx:dx + wb] for dy in range(3) for dx in range(3)], axis=0)
    fx, fy = x[flickering], y[flickering]
    centres = []
    for r, c in np.argwhere(source & (c3 > 0) & (c3 >= top)):
        cx, cy = x3[r, c] / c3[r, c], y3[r, c] / c3[r, c]
        for _ in range(shift):
            near = (fx - cx) ** 2 + (fy - cy) ** 2 <= 4 * core_px * core_px
            if not near.any():
                break
            cx, cy = fx[near].sum() / near.sum(), fy[near].sum() / near.sum()
        centres.append((float(cx), float(cy)))
    return centres


def with_next_centres(centres: list[tuple[float, float]], next_centres: list[tuple[float, float]],
                      core_px: float) -> list[tuple[float, float]]:
    """``centres`` and every centre of the next window (:func:`lamp_centres` of its events) farther
    than ``core_px`` from all of them: a lamp is kept from its first window, where its pixels have
    not yet alternated ``each`` times (it switched on, or came into view, part way through)."""
    out = list(centres)
    for cx, cy in next_centres:
        if all((cx - a) ** 2 + (cy - b) ** 2 > core_px * core_px for a, b in centres):
            out.append((cx, cy))
    return out


def core_events(centres: list[tuple[float, float]], x: np.ndarray, y: np.ndarray, core_px: float,
                contrast: float = 0.0) -> np.ndarray:
    """bool[n]: the events within ``core_px`` of a lamp centre (:func:`lamp_centres`), or with
    ``contrast`` within ``2 * core_px`` and outshining the ring around (see the module text)."""
    out = np.zeros(len(x), bool)
    if not centres or not len(x) or core_px <= 0:
        return out
    x, y = x.astype(np.int64), y.astype(np.int64)
    if contrast > 0:
        pix = y * 65536 + x
        _, inv, cnt = np.unique(pix, return_inverse=True, return_counts=True)
        count = cnt[inv]  # per event: its pixel's events in the window
    for cx, cy in centres:
        d2 = (x - cx) ** 2 + (y - cy) ** 2
        out |= d2 <= core_px * core_px
        if contrast > 0:
            ring = (d2 > 4 * core_px * core_px) & (d2 <= 9 * core_px * core_px)
            ring_mean = ring.sum() / max(len(np.unique(pix[ring])), 1)
            out |= (d2 <= 4 * core_px * core_px) & (count >= contrast * max(ring_mean, 1.0))
    return out


def lamp_centres_reference(source: np.ndarray, events: list[tuple], flickering: list[bool], block_px: int,
                           core_px: float, shift: int = 0) -> list[tuple[float, float]]:
    """Plain version of :func:`lamp_centres`; ``events`` [(x, y, ...), ...]."""
    hb, wb = source.shape
    cnt: dict = {}
    sums: dict = {}
    for (x, y, *_), f in zip(events, flickering):
        blk = (y // block_px, x // block_px)
        if f and source[blk]:
            cnt[blk] = cnt.get(blk, 0) + 1
            sx, sy = sums.get(blk, (0, 0))
            sums[blk] = (sx + x, sy + y)

    def around(r, c):
        keys = [(r + dy, c + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        return (sum(cnt.get(k, 0) for k in keys), sum(sums.get(k, (0, 0))[0] for k in keys),
                sum(sums.get(k, (0, 0))[1] for k in keys))

    centres = []
    for r, c in zip(*np.nonzero(source)):
        n, sx, sy = around(r, c)
        if n > 0 and all(n >= around(r + dy, c + dx)[0] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                         if 0 <= r + dy < hb and 0 <= c + dx < wb):
            cx, cy = sx / n, sy / n
            for _ in range(shift):
                near = [(e[0], e[1]) for e, f in zip(events, flickering)
                        if f and (e[0] - cx) ** 2 + (e[1] - cy) ** 2 <= (2 * core_px) ** 2]
                if not near:
                    break
                cx, cy = sum(q[0] for q in near) / len(near), sum(q[1] for q in near) / len(near)
            centres.append((cx, cy))
    return centres


def lamp_cores_reference(source: np.ndarray, events: list[tuple], flickering: list[bool], block_px: int,
                         core_px: float, shift: int = 0, contrast: float = 0.0) -> np.ndarray:
    """Plain per-event version of :func:`core_events` over :func:`lamp_centres`; ``events`` [(x, y, ...), ...]."""
    return core_events_reference(lamp_centres_reference(source, events, flickering, block_px, core_px, shift),
                                 events, core_px, contrast)


def core_events_reference(centres: list[tuple[float, float]], events: list[tuple], core_px: float,
                          contrast: float = 0.0) -> np.ndarray:
    """Plain per-event version of :func:`core_events`; ``events`` [(x, y, ...), ...]."""
    out = np.zeros(len(events), bool)
    if core_px <= 0:
        return out
    count: dict = {}
    for x, y, *_ in events:
        count[(x, y)] = count.get((x, y), 0) + 1
    for cx, cy in centres:
        ring = [(x, y) for x, y, *_ in events
                if 4 * core_px * core_px < (x - cx) ** 2 + (y - cy) ** 2 <= 9 * core_px * core_px]
        level = contrast * max(len(ring) / max(len(set(ring)), 1), 1.0)
        for j, (x, y, *_) in enumerate(events):
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            if d2 <= core_px * core_px or (contrast > 0 and d2 <= 4 * core_px * core_px and count[(x, y)] >= level):
                out[j] = True
    return out
