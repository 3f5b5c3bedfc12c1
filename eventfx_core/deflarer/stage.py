"""``deflare``: the voxel 3D-UNet deflarer as a windowed pipeline stage.

After E-Deflare (Han et al., arXiv 2512.09016): events are gathered into windows aligned to
absolute time (``t // window_us``), each closed window becomes a voxel grid, the residual 3D
U-Net predicts the flare-free grid, and the stage keeps the input events whose cell's
predicted flare share (:func:`share_grid`: the share the network emptied, or with a flare-mask
head its sigmoid(logit); read per event as :func:`decode.keep_mask` does) is below the threshold. Decisions come
back in arrival order; the added latency is one window plus the compute of one forward pass
(``1 + lookahead_windows`` windows with the gate's look-ahead: a window is then decided once
that many later windows have closed, with what the gate found in them).

Blending with the denoiser: a 4x4-pixel cell cannot tell a light source's core from the flare
around it, an event-level model partly can. When the stage before hands on its per-event
P(flare) (the Mamba denoiser does), an event is dropped when
``(1 - blend) * share + blend * P(flare) >= threshold``; ``blend: 0`` is the deflarer alone,
and events pushed without a P(flare) are judged by the share alone.

Policies (documented here, tested in ``test/test_deflare_stage.py``):

* time going backwards: the buffered windows are decided first, then the stage resets
  (with a warning) and continues with the new time line;
* a window with no events is never formed (nothing to compute);
* a burst: grid values are clipped to ``+-input_clip`` of the checkpoint before the network
  and the flare share is judged relative to the clipped value, so a saturated cell behaves
  like a cell at the clip level (no overflow, no NaN);
* another sensor than the checkpoint's: ``ConfigError`` unless ``allow_other_sensor: true``;
  then the fully convolutional U-Net runs at the native size (the cell grid zero-padded to
  a multiple of ``stem * 2**levels`` cells, cropped back), no resizing;
* ``window_us``/``bins``/``cell_px`` must equal the checkpoint's voxel spec (the network
  learnt that time and space scale), else ``ConfigError``;
* ``threads > 0`` sets torch's intra-op threads (process-wide) for the forward pass; they are
  put back afterwards only when another value was in use, so a pipeline where everything runs
  with the same count pays nothing per window.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..config import WEIGHTS_DIR, resolve_weights
from ..errors import ConfigError
from ..events import Events, first_time_decrease
from ..device import resolve_device
from .checkpoint import load_checkpoint
from .decode import event_flare_share, flare_share, mask_share
from .gate import FlareGate, GateSpec, Observed
from .voxel import VoxelSpec, input_grids
from .window import Window, WindowBuffer

log = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "deflarer.pt"
# DeflareStage.why codes: the rule that removed an event (evaluation only; 0 kept)
WHY = {"unet": 1, "unet_alternating": 2, "unet_phase": 3, "streak": 4, "steady": 5, "ray": 6}


@dataclass
class DeflareConfig:
    checkpoint: str = "default"  # path (relative to the config's folder) or "default" = weights/deflarer.pt
    keep_threshold: float = 0.55  # keep an event when 1 - its flare score >= this (the flare score:
    #                               its cell's predicted flare share, blended as below); like every
    #                               threshold of eventfx, higher keeps less
    blend: float = 0.0  # weight of the previous stage's per-event P(flare) in the flare score:
    #                     (1 - blend) * share + blend * P(flare); 0 = the deflarer alone
    window_us: int = 20000  # window length; must match the checkpoint (E-Deflare: 20 ms)
    bins: int = 8  # time bins per window; must match the checkpoint (E-Deflare: 8)
    cell_px: int = 4  # voxel cell side in pixels; must match the checkpoint
    device: str | None = None  # torch device; None = the pipeline's device
    allow_other_sensor: bool = False  # run a checkpoint trained on another sensor size natively
    threads: int = 0  # torch intra-op threads for the forward pass; 0 = leave torch's setting
    min_events: int = 0  # a window with fewer events holds no flare worth a forward pass: keep all
    gate: bool = True  # act only near light sources (gate.py); false: the U-Net on the whole sensor
    gate_rate: int = 16  # events of one pixel in one window that make it a light-source pixel
    gate_flicker: int = 6  # ... or its polarity alternations over this window and the last
    gate_cluster: int = 3  # light-source pixels a gate block needs to count as a source
    gate_block_px: int = 16  # gate block side
    gate_hold: int = 5  # windows a block stays a source after it was last seen
    gate_radius_px: int = 96  # blocks this close to a source are gated (halo, rays, streaks)
    gate_ghost_radius_px: int = 24  # half-width of the gated ghost line through the sensor centre
    gate_ghost_reach: float = 1.25  # the ghost line: centre + k (source - centre), k in [-reach, 1]
    gate_steady: int = 0  # > 0: a pixel firing >= this in each of two windows is a steady-source pixel ...
    gate_steady_cluster: int = 12  # ... and >= this many of them in a block ...
    gate_steady_contrast: float = 10.0  # ... this many times the ring two blocks away (+1) ...
    gate_steady_windows: int = 1  # ... in this many windows running: a source
    gate_each: int = 0  # > 0: a pixel alternating polarity >= this often in each of ...
    gate_each_windows: int = 3  # ... this many windows running is a light-source pixel too
    gate_phase_bins: int = 0  # > 0: read each event's agreement with its lamps' flicker phase (phase.py) ...
    gate_phase_min: int = 4  # ... where the lamps' cores fired at least this often in its time bin
    gate_core_px: float = 0.0  # > 0: events within this of a lamp's centre are the light source: kept
    gate_core_shift: int = 0  # mean-shift steps moving each lamp centre to its densest spot (phase.py)
    gate_core_contrast: float = 0.0  # > 0: within 2 gate_core_px of a centre, an event whose pixel fired this many
    #                                  times as often as the ring around (2-3 gate_core_px) is the source too
    gate_lock_z: float = 0.0  # > 0 (needs gate_phase_bins): gate only blocks whose events are phase-locked with
    #                           their lamps: sum of agreements >= this x root of the sum of their squares ...
    gate_lock_decay: float = 0.5  # ... over the windows so far, each earlier one weighted by this once more
    gate_track_burst: int = 0  # > 0: drop the glare of tracked moving steady lamps (steady.py): pixels firing >= this
    gate_track_pixels: int = 6  # ... many events of one sign, >= this many of them in 3x3 cells of 8 px, ...
    gate_track_halo: float = 0.15  # ... whose halo fires ON ahead and OFF behind (mean agreement >= this ...
    gate_track_z: float = 8.0  # ... at this z), on a track of gate_track_windows windows, each within ...
    gate_track_windows: int = 3
    gate_track_match_px: float = 4.0  # ... this of the last; glare: ON ahead / OFF behind within ...
    gate_track_reach_px: float = 50.0  # ... this of the lamp's centre, ...
    gate_track_core_px: float = 5.0  # ... and at least this far from it (the lamp itself is kept)
    gate_ray_sectors: int = 0  # > 0: drop the rays of flickering lamps (rays.py): events from gate_ray_inner_px ...
    gate_ray_inner_px: float = 25.0  # ... to gate_radius_px of a lamp's centre, binned by angle into this many
    gate_ray_peak: float = 4.0  # sectors; a sector with >= this many times the median sector's events ...
    gate_ray_z: float = 8.0  # ... whose phase agreements pass the sign test at this z is a ray; its events ...
    gate_ray_phase: float = 0.9  # ... agreeing by more than this are dropped
    tile_px: int = 64  # the U-Net runs on the gated tiles of this side ...
    tile_margin_px: int = 16  # ... each seen with this much context around it
    flicker_lock: int = 0  # > 0 (with the gate): drop only events whose pixel alternated polarity at
    #                        least this often over this window and the last (glare flickers with
    #                        its lamp; a scene edge under the glare does not); 0 = off
    flicker_phase: float = 0.0  # > 0 (with flicker_lock and gate_phase_bins): an event whose phase
    #                             agreement with its lamps is at least this passes the flicker lock too
    flicker_streak: int = 0  # > 0 (with the gate): drop every gated event whose pixel alternated at
    #                          least gate_each times in each of the last flicker_streak windows,
    #                          whatever the U-Net says (a pixel flickering window after window)
    out_of_step: float = -1.0  # > -1 (with the gate and gate_phase_bins): keep every event whose polarity
    #                            agrees with its lamps' flicker phase by less than this, whatever the
    #                            U-Net and the streak say (glare fires in step with its lamp; a scene
    #                            event at a flickering glare pixel fires at its own times); -1: off
    lookahead_windows: int = 0  # > 0 (with the gate): a closed window is decided only once this many
    #                             later windows have closed, with what the gate found in them (a lamp
    #                             found two windows after it switched on gates its first windows too;
    #                             a streak runs on into them); adds this many windows of latency

    RENAMED = {"threshold": "was replaced by keep_threshold, which points the other way (as "
                            "mamba.threshold does): an event is kept when 1 - flare score >= "
                            "keep_threshold; an old threshold t is keep_threshold 1 - t (0.45 -> 0.55)"}

    def check(self, where: str) -> None:
        if not 0.0 <= self.keep_threshold < 1.0:
            raise ConfigError(f"{where}.keep_threshold: must be in [0, 1), got {self.keep_threshold}")
        if not 0.0 <= self.blend <= 1.0:
            raise ConfigError(f"{where}.blend: must be in [0, 1], got {self.blend}")
        VoxelSpec(self.window_us, self.bins, self.cell_px).check(where)
        for name in ("threads", "min_events", "flicker_lock", "flicker_streak", "lookahead_windows"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.flicker_phase <= 1.0:
            raise ConfigError(f"{where}.flicker_phase: must be in [0, 1], got {self.flicker_phase}")
        if not -1.0 <= self.out_of_step <= 1.0:
            raise ConfigError(f"{where}.out_of_step: must be in [-1, 1], got {self.out_of_step}")
        self.gate_spec().check(where)
        for name in ("tile_px", "tile_margin_px"):
            v = getattr(self, name)
            if v < 0 or v % self.cell_px or (name == "tile_px" and v == 0):
                raise ConfigError(f"{where}.{name}: must be a positive multiple of cell_px "
                                  f"({self.cell_px}), got {v}")

    def hold_us(self) -> int:
        """Stream time an event can wait in this stage before its decision: its window, and the
        look-ahead windows after it (the latency the stage adds by design, before compute)."""
        return self.window_us * (1 + (self.lookahead_windows if self.gate else 0))

    def gate_spec(self) -> GateSpec:
        """The gate's settings: ``gate_NAME`` here is ``GateSpec.NAME`` (matched by name)."""
        return GateSpec(**{f.name: getattr(self, "gate_" + f.name) for f in fields(GateSpec)})


def share_grid(vin: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float32[bins, rows, cols] predicted flare share of each cell-bin, from the network input
    and output of :meth:`DeflareStage.forward_window`: the mask head's sigmoid(logit) when the
    checkpoint has one, else the share of the cell's signed value the network removed."""
    share = mask_share(out[1]) if out.shape[0] > 1 else flare_share(vin[0], out[0])
    return np.ascontiguousarray(share, np.float32)


def resolve_checkpoint(name: str, base_dir: Path | None) -> Path:
    return resolve_weights(name, base_dir, DEFAULT_CHECKPOINT.name)


class DeflareStage:
    """Windowed stage: ``push(events) -> keep`` for the oldest buffered events, ``flush()``."""

    name = "deflare"
    RUNTIME_PARAMS = ("keep_threshold", "blend", "min_events", "flicker_lock", "flicker_phase", "flicker_streak",
                      "out_of_step")  # the pipeline may change these while running
    Config = DeflareConfig

    def __init__(self, config: DeflareConfig, sensor: tuple[int, int] = (346, 260),
                 device: str = "cpu", base_dir: Path | None = None):
        self.config = config
        self.sensor = (int(sensor[0]), int(sensor[1]))
        path = resolve_checkpoint(config.checkpoint, base_dir)
        if config.checkpoint == "default" and not path.is_file():
            raise ConfigError(f"deflare: default weights {path} are missing; train them with "
                              f"`eventfx train --config training/deflarer.yaml` or set deflare.checkpoint")
        ckpt = load_checkpoint(path)
        self.spec = VoxelSpec(config.window_us, config.bins, config.cell_px)
        if ckpt.voxel != self.spec:
            have, want = ckpt.voxel, self.spec
            raise ConfigError(f"deflare: {path} was trained on {have.window_us} us / {have.bins} bins / "
                              f"{have.cell_px} px cells, the config asks {want.window_us} us / "
                              f"{want.bins} bins / {want.cell_px} px cells")
        if ckpt.sensor != self.sensor and not config.allow_other_sensor:
            raise ConfigError(f"deflare: {path} was trained on a {ckpt.sensor[0]}x{ckpt.sensor[1]} sensor, "
                              f"the stream is {self.sensor[0]}x{self.sensor[1]}; set deflare.allow_other_sensor: "
                              f"true to run it at the native size (padded, not resized)")
        self.device = resolve_device(config.device or device, "deflare.device")  # auto: CUDA if present
        self.model = ckpt.model.to(self.device).eval()
        self.clip = float(ckpt.model.config.input_clip)
        self.checkpoint_path = path
        self._buffer = WindowBuffer(self.spec.window_us, self.sensor)
        self._flare: deque[np.ndarray] = deque()  # P(flare) of the buffered events (NaN: none given)
        self._held: deque[tuple[Window, np.ndarray, Observed | None]] = deque()  # closed, not yet decided
        self._lookahead = int(config.lookahead_windows) if config.gate else 0
        self._last_t: int | None = None  # newest time stamp pushed since the last reset
        self.gate = FlareGate(config.gate_spec(), self.sensor, self.spec.window_us) if config.gate else None
        self.windows_decided = 0  # counters for diagnostics
        self.resets = 0
        self.tiles_run = 0  # U-Net tiles run (gated), for the cost figures
        self.why: list[np.ndarray] | None = None  # a list: decide_window appends each window's WHY codes

    # ------------------------------------------------------------------ protocol
    def push(self, events: Events, flare: np.ndarray | None = None) -> np.ndarray:
        """Keep decisions for the events of every window that has now closed (arrival order);
        ``flare``: the previous stage's P(flare) of each event, or None."""
        out: list[np.ndarray] = []
        flare = (np.full(len(events), np.nan, np.float32) if flare is None
                 else np.asarray(flare, np.float32).reshape(len(events)))
        while len(events):
            back = first_time_decrease(events, self._last_t)
            if back < 0:
                self._flare.append(flare)
                out += self._decide(self._buffer.push(events), int(events.t[-1]))
                self._last_t = int(events.t[-1])
                break
            if back > 0:
                self._flare.append(flare[:back])
                out += self._decide(self._buffer.push(events[:back]), int(events.t[back - 1]))
            prev = int(events.t[back - 1]) if back > 0 else self._last_t
            log.warning("deflare: time goes backwards (%s -> %d us): deciding %d buffered events "
                        "and resetting", prev, int(events.t[back]), self.pending)
            out += self._decide(self._buffer.flush(), None)
            self.reset()
            self.resets += 1
            events, flare = events[back:], flare[back:]
        return np.concatenate(out) if out else np.zeros(0, bool)

    def advance(self, t_us: int) -> np.ndarray:
        """The stream reached ``t_us`` (events up to there may have been dropped upstream):
        decide every window that ended by then."""
        if self._last_t is not None and t_us < self._last_t:
            return np.zeros(0, bool)  # the next push sees the backwards jump and resets
        self._last_t = int(t_us)
        out = self._decide(self._buffer.advance(t_us), int(t_us))
        return np.concatenate(out) if out else np.zeros(0, bool)

    def flush(self) -> np.ndarray:
        out = self._decide(self._buffer.flush(), None)
        return np.concatenate(out) if out else np.zeros(0, bool)

    def reset(self) -> None:
        """Forget buffered events (their decisions are never returned) and the time line."""
        self._buffer.reset()
        self._flare.clear()
        self._held.clear()
        self._last_t = None
        if self.gate is not None:
            self.gate.reset()

    @property
    def pending(self) -> int:
        """Events pushed whose decision has not been returned yet."""
        return self._buffer.pending + sum(len(w.events) for w, _, _ in self._held)

    # ------------------------------------------------------------------ one window
    def decide_window(self, window: Window, flare: np.ndarray | None = None, observed: Observed | None = None,
                      later: list[Observed] = ()) -> np.ndarray:
        """Keep mask of one closed window's events (``flare``: their P(flare) from the stage
        before, NaN or None where not given). With the gate, events outside it are kept;
        ``observed``/``later``: the gate's observation of this window and of the windows
        observed after it (see :meth:`event_share`)."""
        score = self.event_share(window, observed, later)
        if flare is not None and self.config.blend > 0:
            given = ~np.isnan(flare)
            if self.gate is not None:
                given &= self._gated
            b = np.float32(self.config.blend)
            score[given] = (np.float32(1) - b) * score[given] + b * flare[given]
        keep = np.float32(1) - score >= np.float32(self.config.keep_threshold)
        c = self.config
        if self.gate is not None and c.flicker_lock > 0:
            free = self.gate.alternations < c.flicker_lock
            if c.flicker_phase > 0:
                free &= self.gate.phase < np.float32(c.flicker_phase)
            keep |= free
        if self.gate is not None and c.flicker_streak > 0:
            keep &= ~(self._gated & (self.gate.streak >= c.flicker_streak))
        if self.gate is not None and c.out_of_step > -1:
            keep |= self.gate.phase < np.float32(c.out_of_step)
        if self.gate is not None and c.gate_track_burst > 0:
            keep &= ~self.gate.steady_glare  # a tracked moving steady lamp's glare
        by_rays = np.zeros(len(keep), bool)
        if self.gate is not None and c.gate_ray_sectors > 0:
            by_rays = keep & self._gated & self.gate.ray_glare  # a lamp's rays in its phase-locked blocks
            keep &= ~by_rays
        if self.gate is not None and c.gate_core_px > 0:
            keep |= self.gate.core  # the light source itself
        if self.why is not None:
            self.why.append(self._why(keep, score, by_rays))
        return keep

    def _why(self, keep: np.ndarray, score: np.ndarray, by_rays: np.ndarray) -> np.ndarray:
        """int8 WHY code of every event of the window just decided (evaluation only): 0 kept,
        else the rule that removed it: ``streak`` where the U-Net alone would have kept it, else
        the U-Net's share, let through the flicker lock by an alternating pixel
        (``unet_alternating``) or by phase agreement with its lamps (``unet_phase``); ``steady``:
        the glare of a tracked moving steady lamp; ``ray``: a flickering lamp's rays (where nothing
        before removed it)."""
        c = self.config
        why = np.zeros(len(keep), np.int8)
        gone = ~keep
        why[gone] = WHY["unet"]
        if self.gate is not None and c.flicker_lock > 0:
            why[gone & (self.gate.alternations >= c.flicker_lock)] = WHY["unet_alternating"]
            why[gone & (self.gate.alternations < c.flicker_lock)] = WHY["unet_phase"]
        if self.gate is not None and c.flicker_streak > 0:
            unet_keeps = np.float32(1) - score >= np.float32(c.keep_threshold)
            why[gone & self._gated & (self.gate.streak >= c.flicker_streak) & unet_keeps] = WHY["streak"]
        if self.gate is not None and c.gate_track_burst > 0:
            why[gone & self.gate.steady_glare] = WHY["steady"]
        why[gone & by_rays] = WHY["ray"]
        return why

    def event_share(self, window: Window, observed: Observed | None = None,
                    later: list[Observed] = ()) -> np.ndarray:
        """float32[n]: the predicted flare share at each event of a closed window (0 for every
        event of a window with fewer than ``min_events`` events and, with the gate, for every
        event outside it: no forward pass there). With the gate: ``observed`` is the gate's
        observation of this window (None: observe it now, nothing after it) and ``later`` those
        of the windows observed since (``lookahead_windows``)."""
        ev = window.events
        if self.gate is not None:
            if observed is None:
                observed = self.gate.observe(window.index, ev.x, ev.y, ev.p, ev.t)
            blocks = self.gate.judge(observed, list(later))
            self._gated = self.gate.event_gate(blocks, ev.x, ev.y)
        if len(ev) < self.config.min_events:
            return np.zeros(len(ev), np.float32)
        if self.gate is None:
            vin, out = self.forward_window(ev, window.start_us)
            return event_flare_share(ev, window.start_us, share_grid(vin, out), self.spec)
        return self.tiled_share(ev, window.start_us, self._gated)

    def tiles(self, events: Events, gated: np.ndarray) -> list[tuple[int, int, int, int]]:
        """(tile x, tile y, crop x0, crop y0) of every tile that holds a gated event: the tile
        ``[tx, tx + tile_px)`` is decided from the crop ``[x0, x0 + crop)`` around it (moved
        inside the sensor at its edges, origin on the cell grid)."""
        c = self.config
        t, m = c.tile_px, c.tile_margin_px
        size = t + 2 * m
        w, h = self.sensor
        keys = np.unique((events.y[gated].astype(np.int64) // t) * (-(-w // t))
                         + events.x[gated].astype(np.int64) // t)
        out = []
        for k in keys.tolist():
            ty, tx = divmod(k, -(-w // t))
            x0 = min(max(tx * t - m, 0), max(w - size, 0)) // c.cell_px * c.cell_px
            y0 = min(max(ty * t - m, 0), max(h - size, 0)) // c.cell_px * c.cell_px
            out.append((tx * t, ty * t, x0, y0))
        return out

    def tiled_share(self, events: Events, start_us: int, gated: np.ndarray) -> np.ndarray:
        """:meth:`event_share` on the gated tiles only: one batched forward pass over crops of
        ``tile_px + 2 * tile_margin_px``; every gated event reads its own tile's crop (the
        whole sensor in one pass instead when the crops would cover half of it)."""
        share = np.zeros(len(events), np.float32)
        tiles = self.tiles(events, gated)
        if not tiles:
            return share
        c = self.config
        size = c.tile_px + 2 * c.tile_margin_px
        if 2 * len(tiles) * size * size >= self.sensor[0] * self.sensor[1]:
            # the crops would cover half the sensor or more: one pass over the whole sensor is
            # as cheap and gives wide halos their whole context
            vin, out = self.forward_window(events, start_us)
            grid = share_grid(vin, out)
            share[gated] = event_flare_share(events[gated], start_us, grid, self.spec)
            self.tiles_run += len(tiles)
            return share
        x, y = events.x.astype(np.int64), events.y.astype(np.int64)
        crops, members = [], []
        for tx, ty, x0, y0 in tiles:
            inside = (x >= x0) & (x < x0 + size) & (y >= y0) & (y < y0 + size)
            crop = events[inside]
            crop = Events(crop.t, (crop.x - x0).astype(np.uint16), (crop.y - y0).astype(np.uint16),
                          crop.p, size, size)
            own = gated[inside] & (x[inside] >= tx) & (x[inside] < tx + c.tile_px) \
                & (y[inside] >= ty) & (y[inside] < ty + c.tile_px)
            crops.append((crop, own))
            members.append(np.flatnonzero(inside)[own])
        vin = np.stack([input_grids(crop, start_us, self.spec, self.model.config.in_channels, self.clip)
                        for crop, _ in crops])
        out = self._forward(vin)
        for i, ((crop, own), idx) in enumerate(zip(crops, members)):
            grid = share_grid(vin[i], out[i])
            share[idx] = event_flare_share(crop[own], start_us, grid, self.spec)
        self.tiles_run += len(tiles)
        return share

    def predict(self, events: Events, start_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(clipped signed input grid, predicted clean grid) of the window starting at ``start_us``."""
        vin, out = self.forward_window(events, start_us)
        return vin[0], out[0]

    def forward_window(self, events: Events, start_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(clipped network input [in_channels, bins, rows, cols], network output
        [1 or 2, bins, rows, cols]: clean grid, then flare logits with a mask head)."""
        vin = input_grids(events, start_us, self.spec, self.model.config.in_channels, self.clip)
        return vin, self._forward(vin[None])[0]

    def _forward(self, vin: np.ndarray) -> np.ndarray:
        """The network on a batch of input grids [n, in_channels, bins, rows, cols]."""
        threads = torch.get_num_threads()
        swap = bool(self.config.threads) and threads != self.config.threads
        if swap:
            torch.set_num_threads(self.config.threads)
        try:
            with torch.inference_mode():
                return self.model(torch.from_numpy(vin).to(self.device)).float().cpu().numpy()
        finally:
            if swap:
                torch.set_num_threads(threads)

    def _decide(self, windows: list[Window], clock: int | None) -> list[np.ndarray]:
        """Observe the closed ``windows`` (oldest first) and decide every held window whose
        ``lookahead_windows`` later windows have closed by ``clock`` (the stream's time; None:
        the end, decide everything held). A window is decided before any window more than
        ``lookahead_windows`` after it is observed, so it sees the same later windows whatever
        the message cut."""
        out = []
        for w in windows:
            out += self._release(w.index)
            ev = w.events
            obs = None if self.gate is None else self.gate.observe(w.index, ev.x, ev.y, ev.p, ev.t)
            self._held.append((w, self._pop_flare(len(ev)), obs))
        out += self._release(None if clock is None else clock // self.spec.window_us)
        return out

    def _release(self, open_index: int | None) -> list[np.ndarray]:
        """Decide the held windows ``k`` with ``k + lookahead_windows < open_index`` (all: None)."""
        out = []
        while self._held and (open_index is None or self._held[0][0].index + self._lookahead < open_index):
            w, flare, obs = self._held.popleft()
            later = [o for _, _, o in self._held] if obs is not None else []
            out.append(self.decide_window(w, flare, obs, later))
            self.windows_decided += 1
        return out

    def _pop_flare(self, k: int) -> np.ndarray:
        """The P(flare) of the next ``k`` buffered events (windows close in arrival order)."""
        parts = []
        while k:
            head = self._flare[0]
            if len(head) <= k:
                parts.append(self._flare.popleft())
                k -= len(head)
            else:
                parts.append(head[:k])
                self._flare[0] = head[k:]
                k = 0
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
