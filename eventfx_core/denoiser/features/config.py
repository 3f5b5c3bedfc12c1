"""The feature set: its config and the names of its columns.

The polarity-change quantities follow PFD (polarity-focused denoising, Duan et al., 2024/2025):
per pixel the number of polarity changes within a time window (Mf), their sum over the 3x3
neighbourhood (Ma), the number of active pixels in the 3x3 neighbourhood (Ne) and the density
D = Ma / Ne. The time surfaces follow HOTS / MLPF (Guo & Delbruck, TPAMI 2022).

Every feature of an event is computed from the per-pixel state *before* that event is added
(causal), and lies in [0, 1] or [-1, 1]:

    polarity            2p - 1                                             {-1, +1}
    pixel_same_polarity +1 if the pixel's previous event had this polarity, -1 if not,
                        0 if the pixel never fired                        {-1, 0, +1}
    ts_pixel_<tau>      exp(-dt_pixel / tau) (as ``mathfn.decay``, relative error < 6e-9),
                        dt_pixel = t - last event at the pixel;
                        0 if the pixel never fired                         [0, 1]
    ts_neigh_<tau>      exp(-dt_neigh / tau), dt_neigh = t - latest event among the 8
                        neighbours; 0 if none ever fired                   [0, 1]
    log_dt_pixel        min(1, log1p(dt_pixel) / log1p(dt_cap_us)) (as ``mathfn.log_ratio``,
                        absolute error < 1e-10); 1 if never fired
    log_dt_global       min(1, log1p(t - previous event of the stream) / log1p(global_dt_cap_us));
                        1 for the first event
    pfd_mf              log1p(Mf) / log1p(max_changes)                     [0, 1]
    pfd_ma              log1p(Ma) / log1p(9 * max_changes)                 [0, 1]
    pfd_ne              Ne / 9                                             [0, 1]
    pfd_density         D / max_changes, D = Ma / Ne (0 when Ne = 0)       [0, 1]
    support_same        8-neighbours active within the window whose last polarity is p, / 8
    support_opposite    8-neighbours active within the window whose last polarity is not p, / 8
    x_norm, y_norm      (x + 0.5) / width, (y + 0.5) / height              (0, 1)

With cell sizes in ``cell_px``, flicker features over coarse cells follow (lens flare is a wide halo
whose pixels fire sparsely but all in phase with the light's 100-200 Hz flicker, as in
E-Deflare, Han et al., arXiv 2512.09016; a moving edge fires steadily). For each
cell size c in ``cell_px`` and each tau in ``cell_taus_us``, with v the exponentially
decayed event count (each event adds 1, the count decays as exp(-dt/tau)) of the event's
c x c cell:

    cell<c>_same_<tau>     v_same / (v_same + k), same-polarity events, k = c^2 / 8     [0, 1)
    cell<c>_opposite_<tau> v_opp / (v_opp + k), opposite-polarity events              [0, 1)

and over the whole sensor, with s and l the decayed same-polarity counts at the first and
last of ``cell_taus_us`` (short and long):

    global_burst        (s / tau_s) / (s / tau_s + l / tau_l): 1/2 for a steady rate,
                        towards 1 in a burst (a flicker edge); 0 before any such event  [0, 1]

With ``context_px`` = b > 0 (local context), the two sensor-wide columns above are replaced, at
the same positions, by the same quantities over the 3x3 block of b x b-px cells around the
event's cell (cells outside the sensor never fire), so that a lamp in one place cannot change
the features of events elsewhere (any event's features depend only on events within 2b px):

    log_dt_block        min(1, log1p(t - latest event in the block) / log1p(global_dt_cap_us));
                        1 if none yet (``local_dt`` false: log_dt_global stays)
    block_burst         as global_burst, with s and l the sums over the 9 cells of each cell's
                        decayed same-polarity counts brought to the event's time (read from
                        running 3x3 sums on absolute-time epochs: ``extractor.py``)

Definitions (exact, so that any split of a stream gives the same features):
  * a pixel is *active* for an event at time t if its last event time l satisfies
    t - l <= window_us; Ne counts active pixels in the 3x3 block including the centre;
  * a *polarity change* happens at a pixel when an event's polarity differs from the previous
    event's at that pixel; its time is that event's time;
  * a decayed count is brought to the event's time (multiplied by exp(-(t - last)/tau), as
    ``mathfn.decay``), read, then the event's own polarity gets + 1; all counts of a cell
    (or of the sensor) share one "last" time;
  * Mf(q, t) = number of the pixel's last ``max_changes`` polarity changes at times c with
    t - c <= window_us (so Mf saturates at ``max_changes``: a ring of the last change times
    per pixel is all the state this needs); Ma = sum of Mf over the 3x3 block.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError


@dataclass
class FeatureConfig:
    window_us: int = 10_000  # PFD time window: activity and polarity changes count within it
    taus_us: tuple[float, ...] = (5_000.0, 50_000.0)  # time-surface decay constants exp(-dt/tau)
    max_changes: int = 4  # polarity change times kept per pixel; Mf saturates here
    dt_cap_us: float = 1_000_000.0  # log_dt_pixel reaches 1 at this per-pixel gap (1 s)
    global_dt_cap_us: float = 10_000.0  # log_dt_global reaches 1 at this stream gap (10 ms)
    cell_px: tuple[int, ...] = ()  # flicker-feature cell sizes in pixels (several = several
    #                                scales); () = no cell/global flicker features
    cell_taus_us: tuple[float, ...] = (1_000.0, 10_000.0)  # decay constants of the cell counts
    #                                                         (short first, long last)
    context_px: int = 0  # 0: sensor-wide log_dt_global / global_burst (weights made before
    #                      local context); > 0: log_dt_block / block_burst over 3x3 such cells
    local_dt: bool = True  # with context_px > 0: False keeps log_dt_global (the stream's gap)

    def check(self, where: str = "features") -> None:
        if self.window_us <= 0:
            raise ConfigError(f"{where}.window_us must be > 0, got {self.window_us}")
        if not self.taus_us or any(t <= 0 for t in self.taus_us):
            raise ConfigError(f"{where}.taus_us must be a non-empty list of values > 0")
        if not 1 <= self.max_changes <= 64:
            raise ConfigError(f"{where}.max_changes must be in 1..64, got {self.max_changes}")
        if self.dt_cap_us <= 0 or self.global_dt_cap_us <= 0:
            raise ConfigError(f"{where}: dt_cap_us and global_dt_cap_us must be > 0")
        if any(not 1 <= c <= 256 for c in self.cell_px):
            raise ConfigError(f"{where}.cell_px: sizes must be in 1..256, got {list(self.cell_px)}")
        if not 0 <= self.context_px <= 4096:
            raise ConfigError(f"{where}.context_px must be in 0..4096, got {self.context_px}")
        if self.cell_px and (not self.cell_taus_us or any(t <= 0 for t in self.cell_taus_us)):
            raise ConfigError(f"{where}.cell_taus_us must be a non-empty list of values > 0")


def _tau_label(tau_us: float) -> str:
    return f"{tau_us / 1000:g}ms"


def feature_names(cfg: FeatureConfig) -> list[str]:
    """Column names of the feature matrix, in order (its width is ``len(feature_names(cfg))``)."""
    names = ["polarity", "pixel_same_polarity"]
    names += [f"ts_pixel_{_tau_label(t)}" for t in cfg.taus_us]
    names += [f"ts_neigh_{_tau_label(t)}" for t in cfg.taus_us]
    local = cfg.context_px > 0
    names += ["log_dt_pixel", "log_dt_block" if local and cfg.local_dt else "log_dt_global", "pfd_mf", "pfd_ma", "pfd_ne", "pfd_density",
              "support_same", "support_opposite", "x_norm", "y_norm"]
    for c in cfg.cell_px:
        for tau in cfg.cell_taus_us:
            names += [f"cell{c}_same_{_tau_label(tau)}", f"cell{c}_opposite_{_tau_label(tau)}"]
    if cfg.cell_px:
        names.append("block_burst" if local else "global_burst")
    return names
