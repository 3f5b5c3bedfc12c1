"""Where flare can be: a cheap gate in front of the U-Net, from the light sources themselves.

Lens flare is light of a bright source spread by the optics, so there is no flare without a
source, and every flare event lies near the source (halo, rays, streaks) or on the line through
the source and the optical centre (ghost reflections; Flare7K, Dai et al., NeurIPS 2022, and
E-Deflare, Han et al., arXiv 2512.09016, render them there). Per closed window the gate

1. finds light-source pixels: a pixel that fires at least ``rate`` events in the window (a
   saturated or very bright, moving or flickering source), or whose polarity alternates at
   least ``flicker`` times over this window and the one before (a light locked to a mains or
   PWM period: ON, OFF, ON, ... where a passing edge gives one sign run), or (``each`` > 0)
   whose polarity alternates at least ``each`` times in each of the last ``each_windows``
   windows (a 50 Hz lamp alternates twice per 20 ms window, too few for ``flicker`` over two
   windows, but it does so window after window, where a scene edge stops);
2. marks a block (``block_px`` square) as a source when at least ``cluster`` such pixels lie in
   it (an isolated hot or flickering pixel is no lamp), or (``steady`` > 0) when at least
   ``steady_cluster`` of its pixels fired at least ``steady`` events in each of this window and
   the last, ``steady_contrast`` times as many as the blocks of the ring two blocks away hold on
   average (plus one), in ``steady_windows`` windows running: the compact core of a steady or
   shallowly flickering lamp keeps firing
   far above the scene around it, where a passing edge fires once and a busy textured scene
   fires alike in the ring. Then it keeps the block a source for ``hold``
   windows after it was last seen (a halo outlives a flicker pause; a moving lamp leaves);
3. gates every block within ``radius_px`` of a source block, and every block within
   ``ghost_radius_px`` of the segment ``c + k (s - c)``, ``k`` in ``[-ghost_reach, 1]``,
   through the sensor centre ``c`` (the optical centre) and the source ``s``;
4. (``phase_bins`` > 0) reads each event's agreement with the flicker phase of the source
   blocks within ``radius_px`` (:mod:`.phase`): glare fires ON while its lamp brightens;
5. (``lock_z`` > 0) keeps in the gate only the blocks whose events are phase-locked with their
   lamps: the sum of their agreements reaches ``lock_z`` times the root of the sum of their
   squares, over this window and the ones before it (each earlier window weighted by
   ``lock_decay`` once more). A lamp's halo and rays reach only some blocks of the disc; a block
   of the disc that holds only scene (a moving object 100 px from the lamp) stays out;
6. (``track_burst`` > 0) finds and tracks moving steady lamps (:mod:`.steady`: a compact burst
   of same-polarity events, ON ahead and OFF behind over its halo, on a track of
   ``track_windows`` windows) and marks per event their glare (``steady_glare``), which no
   flicker test finds;
7. (``ray_sectors`` > 0) marks per event the rays of each flickering lamp (:mod:`.rays`: the
   angles around its centre that fire in step with it, from ``ray_inner_px`` to ``radius_px``)
   as ``ray_glare``.

Everything is local to the window and to the blocks near a source: no statistic of the whole
sensor, so a lamp in one place changes no decision far from it (except along its ghost line).
The state (polarity of each pixel's last event, its alternations and events in the last
window, the windows running it alternated ``each`` times, the last window each block was a source) is updated only when a window closes, in window order, so the
gate is as split-invariant and deterministic as the windows. :meth:`FlareGate.observe` takes a
closed window into the state, :meth:`FlareGate.judge` decides it; between them the stage may
observe up to ``lookahead_windows`` later windows (look-ahead): a source found in any window from
``hold - 1`` before to the newest observed one is a source of the judged window, and a pixel's
streak runs on into the consecutive later windows. :func:`gate_reference` is the
plain per-event version (the test oracle of :class:`FlareGate`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from . import steady as st
from . import rays
from .phase import (core_events, core_events_reference, lamp_centres, lamp_centres_reference, lock_sums,
                    lock_sums_reference, phase_agreement, phase_agreement_reference, with_next_centres)

NEVER = np.iinfo(np.int64).min // 4  # "no source seen yet" (far below any window index)
RING = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]


@dataclass(frozen=True)
class GateSpec:
    rate: int = 16  # events of one pixel in one window that make it a light-source pixel
    flicker: int = 6  # polarity alternations of one pixel over this and the last window
    cluster: int = 3  # light-source pixels a block needs to be a source
    block_px: int = 16  # block side (pixels)
    hold: int = 5  # windows a block stays a source after it was last seen
    radius_px: int = 96  # halo reach: blocks this close to a source block are gated
    ghost_radius_px: int = 24  # ghost tube half-width around the line through the centre
    ghost_reach: float = 1.25  # the ghost line runs from c - reach (s - c) to s (0: no ghosts)
    steady: int = 0  # events of one pixel in each of this and the last window (0: off) ...
    steady_cluster: int = 12  # ... in at least this many pixels of a block: a steady source, when
    steady_contrast: float = 10.0  # ... they are this many times (their mean over the ring of
    #                                blocks two blocks away, plus one): a compact bright core ...
    steady_windows: int = 1  # ... in this many windows running (a lamp stays, a passing object goes)
    each: int = 0  # polarity alternations of one pixel in EACH of the last ``each_windows`` windows
    #                that make it a light-source pixel too (0: off): a lamp flickering at 50 Hz or
    #                faster alternates at least twice per 20 ms, window after window
    each_windows: int = 3  # ... that many windows running (this one included)
    phase_bins: int = 0  # > 0: each event's agreement with its lamps' flicker phase (phase.py), read
    #                      in this many time bins per window (0: off)
    phase_min: int = 4  # source events in the bin needed to know the lamps' phase there
    core_px: float = 0.0  # > 0: events within this of a lamp's centre are its core (``core``, phase.py)
    core_shift: int = 0  # mean-shift steps that move each lamp centre to its densest spot (phase.py)
    core_contrast: float = 0.0  # > 0: within 2 core_px, a pixel this many times busier than the ring around is core too
    lock_z: float = 0.0  # > 0 (needs phase_bins): gate only blocks whose events are phase-locked this strongly
    lock_decay: float = 0.5  # weight of the lock sums carried from one window to the next
    track_burst: int = 0  # > 0: moving steady lamps (steady.py): a pixel firing >= this many events of one sign ...
    track_pixels: int = 6  # ... this many such pixels in 3x3 cells of 8 px: a lamp candidate ...
    track_halo: float = 0.15  # ... whose halo's motion-polarity agreement averages >= this ...
    track_z: float = 8.0  # ... and passes the sign test at this z ...
    track_windows: int = 3  # ... on a track of this many windows running ...
    track_match_px: float = 4.0  # ... each within this of the one in the window before: a lamp
    track_reach_px: float = 50.0  # its glare: events within this of its centre, ON ahead and OFF behind ...
    track_core_px: float = 5.0  # ... and at least this far from it (the lamp itself: kept)
    ray_sectors: int = 0  # > 0 (needs phase_bins): a flickering lamp's rays (rays.py): its events from ...
    ray_inner_px: float = 25.0  # ... this to radius_px binned by angle into ray_sectors; a sector holding ...
    ray_peak: float = 4.0  # ... this many times the median sector's events ...
    ray_z: float = 8.0  # ... whose phase agreements pass the sign test at this z is a ray ...
    ray_phase: float = 0.9  # ... and its events agreeing by more than this are glare

    def check(self, where: str) -> None:
        for name in ("rate", "flicker", "cluster", "block_px", "hold", "steady_cluster", "steady_windows",
                     "track_pixels", "track_windows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.gate_{name}: must be >= 1, got {getattr(self, name)}")
        if self.each_windows < 1:
            raise ConfigError(f"{where}.gate_each_windows: must be >= 1, got {self.each_windows}")
        for name in ("radius_px", "ghost_radius_px", "steady", "each", "phase_bins", "phase_min",
                     "core_px", "core_shift", "core_contrast", "ghost_reach", "steady_contrast", "lock_z",
                     "track_burst", "track_halo", "track_z", "track_match_px", "track_reach_px", "track_core_px",
                     "ray_sectors", "ray_peak", "ray_z"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.gate_{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lock_decay <= 1.0:
            raise ConfigError(f"{where}.gate_lock_decay: must be in [0, 1], got {self.lock_decay}")
        if self.lock_z > 0 and self.phase_bins < 1:
            raise ConfigError(f"{where}.gate_lock_z: the phase lock needs gate_phase_bins >= 1")
        if self.ray_sectors > 0 and (self.phase_bins < 1 or self.ray_inner_px <= 0):
            raise ConfigError(f"{where}.gate_ray_sectors: rays need gate_phase_bins >= 1 and gate_ray_inner_px > 0")
        if not -1.0 <= self.ray_phase <= 1.0:
            raise ConfigError(f"{where}.gate_ray_phase: must be in [-1, 1], got {self.ray_phase}")


@dataclass(frozen=True)
class Observed:
    """One window as :meth:`FlareGate.observe` saw it: its events, and per event its pixel
    (``y * width + x``), alternations and streak up to this window; ``on_pix`` the pixels that
    alternated at least ``max(each, 1)`` times in it (sorted); ``lamps`` its steady-lamp
    candidates (:mod:`.steady`) and ``runs`` the windows running of each."""
    index: int
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    t: np.ndarray | None
    pix: np.ndarray
    alternations: np.ndarray
    streak: np.ndarray
    on_pix: np.ndarray
    lamps: tuple = ()
    runs: tuple = ()


@lru_cache(maxsize=16)
def _disc(radius_blocks: float) -> np.ndarray:
    """Offsets (dy, dx) of the blocks whose centres lie within ``radius_blocks`` of a block's
    (computed once per radius; read-only)."""
    r = int(np.floor(radius_blocks))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    inside = dy * dy + dx * dx <= radius_blocks * radius_blocks + 1e-9
    out = np.stack([dy[inside], dx[inside]], 1)
    out.flags.writeable = False
    return out


def _stamp(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, offsets: np.ndarray) -> None:
    """Set ``mask`` at every (row, col) + offset inside it."""
    if not len(rows):
        return
    r = (rows[:, None] + offsets[None, :, 0]).ravel()
    c = (cols[:, None] + offsets[None, :, 1]).ravel()
    ok = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
    mask[r[ok], c[ok]] = True


def ghost_points(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], block_px: int,
                 reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Block (row, col) of points sampled at most half a block apart on each source block's
    ghost line ``c + k (s - c)``, ``k`` in ``[-reach, 1]`` (pixel centre ``c`` of the sensor)."""
    hb, wb = shape
    if not len(rows) or reach <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cy, cx = hb * block_px / 2.0, wb * block_px / 2.0
    sy, sx = (rows + 0.5) * block_px - cy, (cols + 0.5) * block_px - cx
    length = np.hypot(sy, sx) * (1.0 + reach)
    steps = int(np.ceil(length.max() / (block_px / 2.0))) + 1
    k = np.linspace(-reach, 1.0, steps)
    py = np.floor((cy + k[None, :] * sy[:, None]) / block_px).astype(np.int64).ravel()
    px = np.floor((cx + k[None, :] * sx[:, None]) / block_px).astype(np.int64).ravel()
    return py, px


def ghost_blocks(source: np.ndarray, spec: GateSpec) -> np.ndarray:
    """bool[hb, wb]: the blocks within ``ghost_radius_px`` of a source block's ghost line."""
    ghost = np.zeros_like(source)
    gy, gx = ghost_points(*np.nonzero(source), source.shape, spec.block_px, spec.ghost_reach)
    _stamp(ghost, gy, gx, _disc(spec.ghost_radius_px / spec.block_px))
    return ghost


def gated_blocks(source: np.ndarray, spec: GateSpec, ghost: np.ndarray) -> np.ndarray:
    """bool[hb, wb]: the blocks where flare can be (before the lock): ``ghost`` (the source
    blocks' ``ghost_blocks``) and the blocks within ``radius_px`` of a source block."""
    gate = ghost.copy()
    _stamp(gate, *np.nonzero(source), _disc(spec.radius_px / spec.block_px))
    return gate


class FlareGate:
    """Per-window gate with state; ``update(window_index, x, y, p) -> bool[hb, wb]``."""

    def __init__(self, spec: GateSpec, sensor: tuple[int, int], window_us: int = 20000):
        self.spec = spec
        self.window_us = int(window_us)
        self.width, self.height = int(sensor[0]), int(sensor[1])
        b = spec.block_px
        self.shape = (-(-self.height // b), -(-self.width // b))
        self.reset()

    def reset(self) -> None:
        n = self.width * self.height
        self._last_p = np.full(n, -1, np.int8)  # polarity of each pixel's latest event (-1: none)
        self._alt = np.zeros(n, np.int32)  # alternations of each pixel in the last window ...
        self._alt_pix = np.zeros(0, np.int64)  # ... nonzero only at these pixels
        self._cnt = np.zeros(n, np.int32)  # events of each pixel in the last window ...
        self._cnt_pix = np.zeros(0, np.int64)  # ... nonzero only at these pixels
        self._streak = np.zeros(n, np.int32)  # windows running, up to the last, with >= each alternations ...
        self._streak_pix = np.zeros(0, np.int64)  # ... nonzero only at these pixels
        self._last_index: int | None = None  # index of the last window seen
        self._seen = np.full(self.shape, NEVER, np.int64)  # last window each block was a source
        self._bright = np.full(self.shape, NEVER, np.int64)  # last window each block was a bright core ...
        self._run = np.zeros(self.shape, np.int64)  # ... and how many windows running it was one
        self._lock_s = np.zeros(self.shape)  # decayed sums of each block's phase agreements ...
        self._lock_q = np.zeros(self.shape)  # ... and of their squares, up to ...
        self._lock_index: int | None = None  # ... this judged window
        self._track: tuple = ((), (), None)  # steady-lamp candidates, their runs, and their window

    def _forget_last_window(self) -> None:
        """Zero the per-pixel alternation and event counts kept from the last window (only at the
        pixels that fired, so the cost follows the events, not the sensor)."""
        self._alt[self._alt_pix] = 0
        self._alt_pix = np.zeros(0, np.int64)
        self._cnt[self._cnt_pix] = 0
        self._cnt_pix = np.zeros(0, np.int64)

    def _forget_streaks(self) -> None:
        self._streak[self._streak_pix] = 0
        self._streak_pix = np.zeros(0, np.int64)

    def update(self, index: int, x: np.ndarray, y: np.ndarray, p: np.ndarray,
               t: np.ndarray | None = None) -> np.ndarray:
        """Feed window ``index``'s events (time order); the gated blocks of this window. The
        work is proportional to the window's events, not to the sensor. Afterwards, per event:
        ``alternations``, its pixel's polarity alternations over this window and the last (the
        flicker lock of the stage); ``streak``, the windows running (this one included) in which
        its pixel alternated at least ``each`` (at least once when 0) times; ``phase``, its
        agreement with the flicker phase of the sources within ``radius_px`` (phase.py; 0 without
        ``phase_bins`` or ``t``); ``core``, whether it lies within ``core_px`` of a lamp's centre.
        ``judge(observe(...))``: the window decided with nothing after it."""
        return self.judge(self.observe(index, x, y, p, t))

    def observe(self, index: int, x: np.ndarray, y: np.ndarray, p: np.ndarray,
                t: np.ndarray | None = None) -> "Observed":
        """Feed window ``index``'s events (time order) to the state: its light sources are found
        and remembered; what :meth:`judge` needs of the window later is returned."""
        s = self.spec
        if self._last_index is None or index != self._last_index + 1:
            self._last_p[:] = -1  # a gap of a window or more: no alternation spans it
            self._forget_last_window()
            self._forget_streaks()
        pix = y.astype(np.int64) * self.width + x.astype(np.int64)
        order = np.argsort(pix, kind="stable")
        ps, pp = pix[order], p[order].astype(np.int8)
        lamp_pix = [self._alt_pix[self._alt[self._alt_pix] >= s.flicker]]  # flickered enough last window
        steady_pix = np.zeros(0, np.int64)
        if len(ps):
            first = np.ones(len(ps), bool)
            first[1:] = ps[1:] != ps[:-1]
            starts = np.flatnonzero(first)
            upix = ps[starts]
            prev = np.empty_like(pp)
            prev[1:] = pp[:-1]
            prev[first] = self._last_p[upix]
            flips = ((prev != pp) & (prev >= 0)).astype(np.int32)
            alt = np.add.reduceat(flips, starts)
            count = np.diff(np.append(starts, len(ps)))
            both = alt + self._alt[upix]
            lamp_pix.append(upix[(count >= s.rate) | (both >= s.flicker)])
            if s.steady > 0:
                steady_pix = upix[(count >= s.steady) & (self._cnt[upix] >= s.steady)]
            self.alternations = np.empty(len(ps), np.int32)  # per event, in the order given
            self.alternations[order] = np.repeat(both, count)
            on = alt >= max(s.each, 1)
            streak = np.where(on, self._streak[upix] + 1, 0)
            self.streak = np.empty(len(ps), np.int32)  # per event: its pixel's windows running with
            self.streak[order] = np.repeat(streak, count)  # >= each alternations (this one included)
            if s.each > 0:
                lamp_pix.append(upix[streak >= s.each_windows])
            self._forget_streaks()
            self._streak[upix[on]] = streak[on]
            self._streak_pix = upix[on]
            self._last_p[ps[np.append(starts[1:] - 1, len(ps) - 1)]] = pp[np.append(starts[1:] - 1, len(ps) - 1)]
            self._forget_last_window()
            self._alt[upix] = alt
            self._alt_pix = upix[alt > 0]
            self._cnt[upix] = count
            self._cnt_pix = upix
        else:
            self._forget_last_window()
            self._forget_streaks()
            self.alternations = np.zeros(0, np.int32)
            self.streak = np.zeros(0, np.int32)
        self._last_index = index
        ly, lx = np.divmod(np.unique(np.concatenate(lamp_pix)), self.width)
        per_block = np.zeros(self.shape, np.int64)
        np.add.at(per_block, (ly // s.block_px, lx // s.block_px), 1)
        self._seen[per_block >= s.cluster] = index
        if len(steady_pix):
            sy, sx = np.divmod(steady_pix, self.width)
            per_block[:] = 0
            np.add.at(per_block, (sy // s.block_px, sx // s.block_px), 1)
            rows, cols = np.nonzero(per_block >= s.steady_cluster)
            ring = np.zeros(len(rows), np.int64)
            hb, wb = self.shape
            for dy, dx in RING:
                r, c = rows + dy, cols + dx
                ok = (r >= 0) & (r < hb) & (c >= 0) & (c < wb)
                ring[ok] += per_block[r[ok], c[ok]]
            bright = per_block[rows, cols] * len(RING) >= s.steady_contrast * (ring + len(RING))
            rows, cols = rows[bright], cols[bright]
            run = np.where(self._bright[rows, cols] == index - 1, self._run[rows, cols] + 1, 1)
            self._bright[rows, cols], self._run[rows, cols] = index, run
            self._seen[rows[run >= s.steady_windows], cols[run >= s.steady_windows]] = index
        lamps, runs = (), ()
        if s.track_burst > 0:
            bursts = (st.burst_pixels(upix, np.add.reduceat((pp > 0).astype(np.int64), starts), count, s.track_burst)
                      if len(ps) else np.zeros(0, np.int64))  # the pixel runs of the sort above
            lamps = tuple(st.candidates(bursts, ps, pp, self.width, self.height, s.track_pixels,
                                        s.track_reach_px, s.track_halo, s.track_z))
            prev, prev_run, _ = self._track if self._track[2] == index - 1 else ((), (), None)
            runs = tuple(st.extend(prev, prev_run, lamps, s.track_match_px))
            self._track = (lamps, runs, index)
        return Observed(index, x, y, p, t, pix, self.alternations, self.streak,
                        upix[on] if len(ps) else np.zeros(0, np.int64), lamps, runs)

    def judge(self, obs: "Observed", later: list["Observed"] = ()) -> np.ndarray:
        """The gated blocks of the observed window ``obs``, given what was observed since: the
        ``later`` windows (oldest first), all observed after ``obs`` and before anything newer.
        A block found to be a source in any window from ``hold - 1`` windows before ``obs`` to
        the newest observed one is a source of ``obs`` (a lamp found two windows after it
        switched on gates its first windows too); a pixel's ``streak`` runs on into the
        consecutive ``later`` windows in which it alternated ``each`` times. Sets the per-event
        ``alternations``, ``streak``, ``phase``, ``core`` and ``steady_glare`` of ``obs`` (see
        :meth:`update`; ``steady_glare``: the glare of a tracked moving steady lamp, steady.py;
        ``core`` also around the next window's lamp centres, phase.py's ``with_next_centres``)."""
        s = self.spec
        index = obs.index
        source = index - self._seen < s.hold
        streak = obs.streak.copy()
        alive = np.flatnonzero(streak > 0)  # events whose pixel's run is still going
        for f, o in enumerate(later, 1):
            if o.index != index + f or not len(alive) or not len(o.on_pix):
                break
            q = obs.pix[alive]
            at = np.minimum(np.searchsorted(o.on_pix, q), len(o.on_pix) - 1)  # on_pix is sorted
            alive = alive[o.on_pix[at] == q]
            streak[alive] += 1
        self.alternations, self.streak = obs.alternations, streak
        x, y, p, t = obs.x, obs.y, obs.p, obs.t
        ghost = ghost_blocks(source, s)
        if s.phase_bins > 0 and t is not None:
            self.phase = phase_agreement(source, x, y, p, t, index * self.window_us, self.window_us,
                                         s.phase_bins, s.phase_min, s.block_px, _disc(s.radius_px / s.block_px),
                                         ghost)
        else:
            self.phase = np.zeros(len(x), np.float32)
        flickering = obs.streak > 0  # alternated >= max(each, 1) times in this window
        centres = lamp_centres(source, x, y, flickering, s.block_px, s.core_px, s.core_shift)
        if later and later[0].index == index + 1:  # a lamp this window shows too little of yet
            nxt = later[0]
            centres = with_next_centres(centres, lamp_centres(source, nxt.x, nxt.y, nxt.streak > 0, s.block_px,
                                                              s.core_px, s.core_shift), s.core_px)
        self.core = core_events(centres, x, y, s.core_px, s.core_contrast)
        self.ray_glare = rays.ray_glare(centres, x, y, self.phase, s.ray_inner_px, s.radius_px, s.ray_sectors,
                                        s.ray_peak, s.ray_z, s.ray_phase)
        gate = gated_blocks(source, s, ghost)
        self.steady_glare = np.zeros(len(x), bool)
        if s.track_burst > 0 and obs.lamps:
            nxt = []
            for f, o in enumerate(later, 1):
                if o.index != index + f:
                    break
                nxt.append(list(o.lamps))
            fwd = st.ahead(list(obs.lamps), nxt, s.track_match_px)
            lamps = [q for q, k, f in zip(obs.lamps, obs.runs, fwd) if k + f >= s.track_windows]
            self.steady_glare = st.glare(lamps, x, y, p, s.track_reach_px, s.track_core_px)
        if s.lock_z > 0:
            if self._lock_index != index - 1:  # a gap: nothing carries over it
                self._lock_s[:], self._lock_q[:] = 0.0, 0.0
            self._lock_index = index
            m = self.phase != 0  # the rest adds nothing (no lamp in reach): cost follows the lamps' events
            ws, wq = lock_sums(self.phase[m], x[m], y[m], self.shape, s.block_px)
            self._lock_s = s.lock_decay * self._lock_s + ws
            self._lock_q = s.lock_decay * self._lock_q + wq
            gate &= self._lock_s >= s.lock_z * np.sqrt(np.maximum(self._lock_q, 1.0))
        return gate

    def event_gate(self, blocks: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """bool[n]: the events that lie in a gated block."""
        b = self.spec.block_px
        return blocks[y.astype(np.int64) // b, x.astype(np.int64) // b]


def gate_reference(windows: list[tuple[int, list[tuple]]], spec: GateSpec, sensor: tuple[int, int],
                   window_us: int = 20000, per_event: list | None = None, lookahead: int = 0,
                   steady_glare: list | None = None, ray_glare: list | None = None) -> list[np.ndarray]:
    """Plain per-event version of :class:`FlareGate` over a list of (window index,
    [(x, y, p) or (x, y, p, t), ...] in time order): the gated blocks of each window (the test
    oracle). ``per_event``, when given, receives (alternations, streak, phase, core) of each
    window's events (phase 0 where the events have no ``t``), and ``steady_glare`` the glare of
    tracked steady lamps (steady.py), ``ray_glare`` that of flickering lamps' rays (rays.py). ``lookahead``: each window is
    judged knowing the windows up to ``lookahead`` indices after it (``FlareGate.judge`` with
    them as ``later``): a block is its source when it was found one in a window in
    ``(index - hold, index + lookahead]``; a streak runs on through the consecutive later windows."""
    w, h = sensor
    b = spec.block_px
    hb, wb = -(-h // b), -(-w // b)
    last_p: dict = {}
    alt_prev: dict = {}
    count_prev: dict = {}
    found: dict = {}  # window index: the blocks found to be sources in it
    bright_run: dict = {}  # block: (last window it was a bright core, windows running)
    streak_prev: dict = {}  # pixel: windows running, up to the last, with >= each alternations
    last_index = None
    seen_windows = []  # (index, events, alternations, streaks (pixel: windows running))
    for index, events in windows:
        if last_index is None or index != last_index + 1:
            last_p, alt_prev, count_prev, streak_prev = {}, {}, {}, {}
        count: dict = {}
        alt: dict = {}
        for x, y, p, *_ in events:
            count[(x, y)] = count.get((x, y), 0) + 1
            if (x, y) in last_p and last_p[(x, y)] != p:
                alt[(x, y)] = alt.get((x, y), 0) + 1
            last_p[(x, y)] = p
        lamps: dict = {}
        for (x, y) in set(count) | set(alt_prev):
            if count.get((x, y), 0) >= spec.rate or alt.get((x, y), 0) + alt_prev.get((x, y), 0) >= spec.flicker:
                lamps[(y // b, x // b)] = lamps.get((y // b, x // b), 0) + 1
        streak = {q: streak_prev.get(q, 0) + 1 for q in count if alt.get(q, 0) >= max(spec.each, 1)}
        if spec.each > 0:
            for (x, y), k in streak.items():
                if k >= spec.each_windows and not (count[(x, y)] >= spec.rate
                                                   or alt.get((x, y), 0) + alt_prev.get((x, y), 0) >= spec.flicker):
                    lamps[(y // b, x // b)] = lamps.get((y // b, x // b), 0) + 1
        found[index] = {blk for blk, k in lamps.items() if k >= spec.cluster}
        if spec.steady > 0:
            steady: dict = {}
            for (x, y), k in count.items():
                if k >= spec.steady and count_prev.get((x, y), 0) >= spec.steady:
                    steady[(y // b, x // b)] = steady.get((y // b, x // b), 0) + 1
            for (r, c), k in steady.items():
                ring = sum(steady.get((r + dy, c + dx), 0) for dy in range(-2, 3) for dx in range(-2, 3)
                           if max(abs(dy), abs(dx)) == 2)
                if k >= spec.steady_cluster and k * 16 >= spec.steady_contrast * (ring + 16):
                    last, run = bright_run.get((r, c), (None, 0))
                    run = run + 1 if last == index - 1 else 1
                    bright_run[(r, c)] = (index, run)
                    if run >= spec.steady_windows:
                        found[index].add((r, c))
        alts = [alt.get((e[0], e[1]), 0) + alt_prev.get((e[0], e[1]), 0) for e in events]
        seen_windows.append((index, events, alts, streak))
        alt_prev, count_prev, streak_prev, last_index = alt, count, streak, index
    by_index = {index: streak for index, _, _, streak in seen_windows}
    events_by_index = {index: events for index, events, _, _ in seen_windows}
    if steady_glare is not None:
        steady_glare.extend(st.steady_reference(windows, w, h, spec.track_burst, spec.track_pixels, spec.track_reach_px,
                                                spec.track_halo, spec.track_z, spec.track_windows, spec.track_match_px,
                                                spec.track_core_px, lookahead) if spec.track_burst > 0
                            else [np.zeros(len(events), bool) for _, events in windows])
    out = []
    lock_s, lock_q, lock_index = np.zeros((hb, wb)), np.zeros((hb, wb)), None
    for index, events, alts, streak in seen_windows:
        source = np.zeros((hb, wb), bool)
        for j, blocks in found.items():
            if index - spec.hold < j <= index + lookahead:
                for r, c in blocks:
                    source[r, c] = True
        ghost = np.zeros((hb, wb), bool)
        rad, grad = spec.radius_px / b, spec.ghost_radius_px / b
        gy, gx = ghost_points(*np.nonzero(source), (hb, wb), b, spec.ghost_reach)
        for r, c in zip(gy.tolist(), gx.tolist()):
            for rr in range(hb):
                for cc in range(wb):
                    if (rr - r) ** 2 + (cc - c) ** 2 <= grad * grad + 1e-9:
                        ghost[rr, cc] = True
        timed = spec.phase_bins > 0 and all(len(e) == 4 for e in events)
        phase = (phase_agreement_reference(source, events, index * window_us, window_us, spec.phase_bins,
                                           spec.phase_min, b, spec.radius_px / b, ghost) if timed
                 else np.zeros(len(events), np.float32))
        flick = [streak.get((e[0], e[1]), 0) > 0 for e in events]  # alternated >= max(each, 1) times here
        centres = []  # the lamps' centres (for the cores and the rays)
        if per_event is not None or ray_glare is not None:
            own = lamp_centres_reference(source, events, flick, b, spec.core_px, spec.core_shift)
            centres = list(own)
            if lookahead >= 1 and index + 1 in by_index:  # the next window's centres where this one has none near
                nxt_events = events_by_index[index + 1]
                nxt_flick = [by_index[index + 1].get((e[0], e[1]), 0) > 0 for e in nxt_events]
                for cx, cy in lamp_centres_reference(source, nxt_events, nxt_flick, b, spec.core_px, spec.core_shift):
                    if all((cx - a) ** 2 + (cy - c) ** 2 > spec.core_px ** 2 for a, c in own):
                        centres.append((cx, cy))
        if per_event is not None:
            streaks = []
            for x, y, *_ in events:
                k = streak.get((x, y), 0)
                f = 1
                while k and f <= lookahead and by_index.get(index + f, {}).get((x, y), 0):
                    f += 1
                streaks.append(k + f - 1 if k else 0)
            core = core_events_reference(centres, events, spec.core_px, spec.core_contrast)
            per_event.append((np.array(alts, np.int32), np.array(streaks, np.int32), phase, core))
        if ray_glare is not None:
            ray_glare.append(rays.ray_glare_reference(centres, events, phase, spec.ray_inner_px, spec.radius_px,
                                                      spec.ray_sectors, spec.ray_peak, spec.ray_z, spec.ray_phase))
        gate = ghost.copy()
        for r, c in zip(*np.nonzero(source)):
            for rr in range(hb):
                for cc in range(wb):
                    if (rr - r) ** 2 + (cc - c) ** 2 <= rad * rad + 1e-9:
                        gate[rr, cc] = True
        if spec.lock_z > 0:
            if lock_index != index - 1:
                lock_s, lock_q = np.zeros((hb, wb)), np.zeros((hb, wb))
            lock_index = index
            ws, wq = lock_sums_reference(phase, events, (hb, wb), b)
            lock_s, lock_q = spec.lock_decay * lock_s + ws, spec.lock_decay * lock_q + wq
            for rr in range(hb):
                for cc in range(wb):
                    if lock_s[rr, cc] < spec.lock_z * np.sqrt(max(lock_q[rr, cc], 1.0)):
                        gate[rr, cc] = False
        out.append(gate)
    return out
