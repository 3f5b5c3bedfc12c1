"""eventfx on a GPU: does the CUDA path decide as the CPU path does, whatever the message cut, and fast?

    python scripts/gpu_check.py --out DIR [RECORDING ...]

Needs CUDA and mamba-ssm (the ``gpu`` extra); run it on a GPU machine, never in CI. Default
recordings: the demo clip and the real bags of ``../shared/data/ros2_bags``. For each recording
and each config (``config/denoise.yaml``, the default pipeline; ``config/mamba.yaml``, the Mamba
stage alone) it runs the pipeline with ``device: cpu`` and ``device: cuda`` over the recording's
own messages, and the CUDA pipeline again over the same events cut into 1 ms messages and as
one message. It prints, and writes to DIR/gpu_check.json: events kept; the share of events whose
decision on CUDA equals the CPU's (the CPU path is exact under any cut, ``test/``); the share
equal between the CUDA runs' cuts; per-message latency (p50, p99) and events per second of each
device after a warm-up. Triton computes float32 products in TF32, so CUDA and CPU agree on
decisions, not on bits (``denoiser/gpu_runner.py``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventfx_core.bench.stages import cut_messages  # noqa: E402
from eventfx_core.cli.bench import read_messages  # noqa: E402
from eventfx_core.events import Events, concat  # noqa: E402
from eventfx_core.pipeline import Pipeline  # noqa: E402
from eventfx_core.pipeline_config import load_denoise_config  # noqa: E402

CONFIGS = {"pipeline": REPO / "config" / "denoise.yaml", "mamba": REPO / "config" / "mamba.yaml"}


def default_recordings() -> list[Path]:
    bags = REPO.parent / "shared" / "data" / "ros2_bags"
    return [REPO / "data" / "demo" / "emlb_demo_evt3",
            *sorted(p for p in bags.iterdir() if p.is_dir())] if bags.is_dir() else \
        [REPO / "data" / "demo" / "emlb_demo_evt3"]


def run(config: Path, device: str, messages: list[Events]) -> dict:
    """Keep decisions (in event order) and per-message wall times of one pipeline run, after a
    warm-up on the first 20,000 events and a reset (as ``eventfx bench`` does)."""
    cfg = load_denoise_config(config, {"device": device})
    pipe = Pipeline(cfg.pipeline, messages[0].sensor_size, cfg.base_dir)
    warm = concat(messages)[:20_000]
    pipe.push(warm)
    pipe.flush()
    pipe.reset()
    keep, lat = [], []
    sync = _sync(device)
    for m in messages:
        t0 = time.perf_counter()
        keep += [d.keep for d in pipe.push(m)]
        sync()
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    keep += [d.keep for d in pipe.flush()]
    lat[-1] += time.perf_counter() - t0
    pipe.close()
    keep = np.concatenate(keep) if keep else np.zeros(0, bool)
    n = sum(len(m) for m in messages)
    assert len(keep) == n, (len(keep), n)
    lat_ms = np.asarray(lat) * 1e3
    return {"keep": keep, "events": n, "messages": len(messages), "kept": int(keep.sum()),
            "events_per_s": n / max(sum(lat), 1e-9),
            "latency_p50_ms": float(np.percentile(lat_ms, 50)),
            "latency_p99_ms": float(np.percentile(lat_ms, 99))}


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def check(path: Path, device: str) -> dict:
    messages = read_messages(str(path), None, 10**9)
    events = concat(messages)
    span_s = (int(events.t[-1]) - int(events.t[0])) * 1e-6
    out = {"recording": str(path), "sensor": list(events.sensor_size), "events": len(events),
           "messages": len(messages), "span_s": span_s, "configs": {}}
    for name, config in CONFIGS.items():
        cpu = run(config, "cpu", messages)
        gpu = run(config, device, messages)
        gpu_1ms = run(config, device, cut_messages(events, 1000))
        gpu_one = run(config, device, [events])
        row = {
            "kept_cpu": cpu["kept"], "kept_cuda": gpu["kept"],
            "cuda_equals_cpu": float(np.mean(cpu["keep"] == gpu["keep"])),
            "cuda_1ms_equals_cuda": float(np.mean(gpu_1ms["keep"] == gpu["keep"])),
            "cuda_one_message_equals_cuda": float(np.mean(gpu_one["keep"] == gpu["keep"])),
        }
        for dev, r in (("cpu", cpu), ("cuda", gpu), ("cuda_1ms", gpu_1ms)):
            row[f"{dev}_events_per_s"] = r["events_per_s"]
            row[f"{dev}_latency_p50_ms"] = r["latency_p50_ms"]
            row[f"{dev}_latency_p99_ms"] = r["latency_p99_ms"]
            row[f"{dev}_x_realtime"] = r["events_per_s"] * span_s / max(len(events), 1)
        out["configs"][name] = row
        print(f"{path.name} {name}: " + " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recordings", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda", help="the device checked against the CPU (cpu: a dry run)")
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: error: torch sees no GPU", file=sys.stderr)
        return 2
    from eventfx_core.denoiser.gpu_runner import mamba_ssm_scan_error

    reason = mamba_ssm_scan_error() if args.device.startswith("cuda") else None
    if reason:
        print(f"gpu_check: error: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
               "torch": torch.__version__,
               "recordings": [check(p, args.device) for p in (args.recordings or default_recordings())]}
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
