"""Speed of the ``deflare`` stage: windows decided per second and added latency per window.

Builds a checkpoint of the default model (``UNet3DConfig()``, ``VoxelSpec()``) with random
non-zero weights (the compute does not depend on the weights' values), makes a synthetic
stream at ``--rate`` events/s (uniform background plus a dense flickering flare disc) for
each sensor size, pushes it through ``DeflareStage`` in 1 ms messages and times every
window's cost (all pushes of its 1 ms messages: buffering, then voxel grid + forward pass +
keep decode when it closes), and the three parts apart.

    eventfx bench --deflare                                  # 346x260 and 640x480, 1 and 2 threads
    eventfx bench --deflare --sensor 640x480 --threads 2 --windows 100

Reported per sensor and thread count: median / p90 / max compute per 20 ms window, windows
per second (1 / mean compute), the real-time factor (window length / mean compute) and the
added latency of an event (the window it waits for, <= window_us, plus the compute; median
compute is shown). The machine's load average is printed too: on a shared CPU, timings with
2 threads swing by 10x when the other core is busy (OpenMP threads spin-wait for a
descheduled partner); ``OMP_WAIT_POLICY=PASSIVE`` in the environment (set before Python
starts) tames that tail (measured: max 54 ms instead of 740 ms at 346x260, load 5).
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..deflarer.checkpoint import load_checkpoint, save_checkpoint
from ..deflarer.decode import event_flare_share
from ..deflarer.model import ResidualUNet3D, UNet3DConfig
from ..deflarer.stage import DeflareStage, share_grid
from ..deflarer.voxel import VoxelSpec, input_grids
from ..errors import EventfxError
from ..events import Events


def synthetic_stream(width: int, height: int, rate: float, duration_us: int, seed: int = 0) -> Events:
    """Uniform background plus a flickering flare disc with half of the events."""
    rng = np.random.default_rng(seed)
    n = int(rate * duration_us / 1e6)
    t = np.sort(rng.integers(0, duration_us, n))
    flare = rng.random(n) < 0.5
    r, a = rng.random(n) * min(width, height) / 4, rng.random(n) * 2 * np.pi
    x = np.where(flare, np.clip(width / 2 + r * np.cos(a), 0, width - 1), rng.integers(0, width, n)).astype(np.int64)
    y = np.where(flare, np.clip(height / 2 + r * np.sin(a), 0, height - 1), rng.integers(0, height, n)).astype(np.int64)
    p = np.where(flare, (t // 5000) % 2, rng.integers(0, 2, n))
    return Events.from_arrays(t, x, y, p, width, height)


def random_checkpoint(path: Path, sensor: tuple[int, int]) -> Path:
    torch.manual_seed(0)
    model = ResidualUNet3D(UNet3DConfig())
    with torch.no_grad():
        model.head.weight.normal_(0, 0.1)  # a non-identity model (same compute either way)
    return save_checkpoint(path, model, VoxelSpec(), sensor)


def bench(sensor: tuple[int, int], threads: int, windows: int, rate: float, tmp: Path,
          checkpoint: str | None = None, gate: bool = False) -> dict:
    torch.set_num_threads(threads)
    ckpt = checkpoint or random_checkpoint(tmp / f"bench_{sensor[0]}x{sensor[1]}.pt", sensor)
    voxel = load_checkpoint(ckpt).voxel  # the stage runs at the checkpoint's window, bins and cells
    stage = DeflareStage(DeflareStage.Config(checkpoint=str(ckpt), threads=threads, allow_other_sensor=True,
                                             gate=gate, window_us=voxel.window_us, bins=voxel.bins,
                                             cell_px=voxel.cell_px),
                         sensor=sensor)
    spec = stage.spec
    ev = synthetic_stream(*sensor, rate, (windows + 3) * spec.window_us)
    # warm-up: numba compilation, oneDNN primitive creation
    stage.push(ev[ev.t < 2 * spec.window_us])
    stage.reset()
    per_msg = np.searchsorted(ev.t, np.arange(0, ev.t[-1] + 1000, 1000))
    totals, parts = [], {"voxel": [], "forward": [], "decode": []}
    decided, busy, since = 0, 0.0, 0.0
    for a, b in zip(per_msg[:-1], per_msg[1:]):
        t0 = time.perf_counter()
        keep = stage.push(ev[a:b])
        dt = time.perf_counter() - t0
        busy += dt
        since += dt
        if len(keep):  # this message closed a window: the pushes since the last one are its cost
            totals.append(since)
            since = 0.0
            decided += len(keep)
        if len(totals) >= windows:
            break
    # the same windows again, part by part
    start = int(ev.t[0]) // spec.window_us * spec.window_us
    for k in range(min(windows, 30)):
        w0 = start + k * spec.window_us
        win = ev[(ev.t >= w0) & (ev.t < w0 + spec.window_us)]
        t0 = time.perf_counter()
        vin = input_grids(win, w0, spec, stage.model.config.in_channels, stage.clip)
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = stage.model(torch.from_numpy(vin)[None])[0].numpy()
        t2 = time.perf_counter()
        1 - event_flare_share(win, w0, share_grid(vin, out), spec) >= stage.config.keep_threshold
        t3 = time.perf_counter()
        parts["voxel"].append(t1 - t0); parts["forward"].append(t2 - t1); parts["decode"].append(t3 - t2)  # noqa: E702
    ms = np.array(totals) * 1e3  # every push of the window (buffering + the closing push's decision)
    return {
        "sensor": f"{sensor[0]}x{sensor[1]}", "threads": threads, "windows": len(ms),
        "events_per_window": decided / max(len(ms), 1),
        "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "max_ms": float(ms.max()),
        "windows_per_s": 1e3 / float(ms.mean()), "realtime_factor": spec.window_us / 1e3 / float(ms.mean()),
        "latency_ms": spec.window_us / 1e3 + float(np.median(ms)),
        **{f"{k}_ms": 1e3 * float(np.median(v)) for k, v in parts.items()},
    }


def add_arguments(p) -> None:
    """The options of ``eventfx bench --deflare``."""
    g = p.add_argument_group("--deflare (the deflare stage per window)")
    g.add_argument("--sensor", action="append", help="WxH (repeatable); default 346x260 and 640x480")
    g.add_argument("--threads", type=int, action="append", help="torch threads (repeatable); default 1 and 2")
    g.add_argument("--windows", type=int, default=60, help="windows timed per configuration")
    g.add_argument("--rate", type=float, default=2e6, help="events per second of the synthetic stream")
    g.add_argument("--gate", action="store_true", help="with the light-source gate (the default configs' "
                   "setting; the stream's flickering disc opens it); without: the U-Net on the whole sensor")
    g.add_argument("--checkpoint", help="time this checkpoint (e.g. eventfx_core/weights/deflarer.pt) "
                   "instead of a random default-config model")


def parse_sensor(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H), both positive; ``EventfxError`` otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EventfxError(f"--sensor {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w <= 0 or h <= 0:
        raise EventfxError(f"--sensor {text!r}: width and height must be positive")
    return w, h


def run(args) -> int:
    sensors = [parse_sensor(s) for s in (args.sensor or ["346x260", "640x480"])]
    if any(t < 1 for t in args.threads or []):
        raise EventfxError(f"--threads must be >= 1, got {args.threads}")
    if args.windows < 1:
        raise EventfxError(f"--windows must be >= 1, got {args.windows}")
    if not (0 < args.rate < math.inf):
        raise EventfxError(f"--rate must be a finite number > 0, got {args.rate}")
    spec = load_checkpoint(args.checkpoint).voxel if args.checkpoint else VoxelSpec()
    print(f"torch {torch.__version__}, oneDNN {torch.backends.mkldnn.is_available()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, model {args.checkpoint or UNet3DConfig()}, {spec}")
    with tempfile.TemporaryDirectory() as d:
        for sensor in sensors:
            for threads in args.threads or [1, 2]:
                r = bench(sensor, threads, args.windows, args.rate, Path(d), args.checkpoint, args.gate)
                print(f"{r['sensor']} threads={r['threads']}: {r['windows']} windows of "
                      f"{r['events_per_window']:.0f} events; compute median {r['median_ms']:.1f} ms "
                      f"(p90 {r['p90_ms']:.1f}, max {r['max_ms']:.1f}) = voxel {r['voxel_ms']:.2f} + "
                      f"forward {r['forward_ms']:.1f} + decode {r['decode_ms']:.2f}; "
                      f"{r['windows_per_s']:.0f} windows/s, real-time x{r['realtime_factor']:.2f}; "
                      f"added latency {r['latency_ms']:.1f} ms (<= window + median compute); "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
    return 0
