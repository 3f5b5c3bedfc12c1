"""The deflarer on real scenes: do no harm where there is no flare, remove the glare there is.

``python -m eventfx_core.evaluate.flare_real --out DIR [--config config/denoise.yaml]
[--deflare-config config/deflare.yaml] [--seconds 0.3] [--starts 0,0.3,0.6] [--lamp-at FX,FY]``
writes ``DIR/report.json``, ``DIR/report.md`` and PNGs:

(a) every stage of the pipeline alone on every real recording (none holds lens flare): the
    share of its events each keeps;
(b) glare overlays (:mod:`.glare_overlay`, independent of the training generator) on the real
    346x260 scenes: the share of the glare removed, of the lamp core kept, and of the scene
    events kept compared with the same run without the overlay (an event counts when it is
    kept in both runs), for the deflarer alone and the whole pipeline;
(c) where the scene an overlay run loses lies, and which rule or stage removed it;
(d) where the glare an overlay run keeps lies: by the part of the glare (halo, rays, streak,
    ghosts), by distance from the lamp, before or after the lamp has been on for a while;
PNGs: input | kept | removed, the removed events coloured by the stage that removed them.
Recordings come from the real-data benchmark (``evaluate.real.recordings``, with its tune and
report splits).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..events import Events
from ..pipeline import Pipeline
from ..pipeline_config import PipelineConfig, load_denoise_config
from ..viz import before_after_png
from .glare_overlay import CORE, GLARE, TERMS, glare_part, overlay, render_overlay, standard_lamps


def run(cfg: PipelineConfig, base_dir, ev: Events, chunk: int = 20000, why: list | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """(keep, removed_by) of every event: the pipeline fed in messages of ``chunk`` events.
    ``why``: a list that receives the deflarer's per-event WHY codes (``deflarer.stage.WHY``),
    for a deflarer-alone config only (its windows are decided in arrival order)."""
    pipe = Pipeline(cfg, ev.sensor_size, base_dir=base_dir)
    if why is not None:
        if list(cfg.stages) != ["deflare"]:
            raise ValueError("why codes need the deflarer alone")
        pipe.stages[0].why = why
    out = []
    for a in range(0, len(ev), chunk):
        out += pipe.push(ev[a:a + chunk])
    out += pipe.flush()
    pipe.close()
    if not out:
        return np.zeros(0, bool), np.zeros(0, np.int8)
    return np.concatenate([d.keep for d in out]), np.concatenate([d.removed_by for d in out])


NEAR_MS = (2, 20)  # "glare at the same pixel within +-N ms": 2 ms (a flicker half-period), 20 ms (a window)
RINGS_PX = (12, 40, 96)  # distance bins from the lamp centre: halo, rays, the gate's reach, beyond


def by_ring(ev: Events, lamp, t0: int, pts) -> dict:
    """``pts(mask)`` of the events of each ``RINGS_PX`` ring around the lamp at each event's time
    (the lamp switched on at ``t0``), keyed "a-b" (the last ">a")."""
    s = (ev.t - t0) * 1e-6
    d = np.hypot(ev.x - (lamp.x + lamp.vx * s), ev.y - (lamp.y + lamp.vy * s))
    edges = (0,) + RINGS_PX + (np.inf,)
    return {f"{a}-{b}" if np.isfinite(b) else f">{a}": pts((d >= a) & (d < b)) for a, b in zip(edges[:-1], edges[1:])}


def near_glare(ev: Events, src: np.ndarray, dt_us: int) -> np.ndarray:
    """bool per scene event (``src == 0``, in order): some overlay event (glare or core) fires at
    the same pixel within +-``dt_us`` of it. Such a scene event looks, to any per-pixel rule
    over that time span, like the glare around it."""
    t = (ev.t - ev.t[0]).astype(np.int64)
    pix = ev.y.astype(np.int64) * ev.width + ev.x.astype(np.int64)
    span = np.int64(int(t[-1]) + 2 * dt_us + 2)  # keys pix * span + t never collide across pixels
    g = np.sort(pix[src != 0] * span + t[src != 0] + dt_us)  # shifted so that key - dt >= 0
    k = pix[src == 0] * span + t[src == 0] + dt_us
    return np.searchsorted(g, k + dt_us, side="right") > np.searchsorted(g, k - dt_us, side="left")


def scene_loss(ev: Events, src: np.ndarray, keep: np.ndarray, kept_alone: np.ndarray, lamp, t0: int,
               removed_by: np.ndarray, stages: list[str], why: np.ndarray | None) -> dict:
    """Where the scene events an overlay run loses lie, in points of the scene kept without the
    overlay (they add up to 100 - scene kept): at a pixel where the overlay fires within +-N ms
    (``NEAR_MS``) or elsewhere, by distance from the lamp at the event's time (``RINGS_PX``), and
    by the stage (pipeline) or deflarer rule (deflarer alone) that removed it. ``ceiling_Nms``:
    the share of those scene events with no overlay event at their pixel within +-N ms (what a
    per-event rule keeps at most if it removes every glare event sharing a pixel and time span
    with them)."""
    sc = src == 0
    base = kept_alone
    n = max(int(base.sum()), 1)
    lost = base & ~keep[sc]
    pts = (lambda m: float(100.0 * (lost & m).sum() / n))
    out = {}
    for ms in NEAR_MS:
        near = near_glare(ev, src, ms * 1000)
        out[f"ceiling_{ms}ms"] = float(1 - (base & near).sum() / n)
        out[f"lost_near_{ms}ms_pts"] = pts(near)
    out["lost_by_distance_pts"] = by_ring(ev[sc], lamp, t0, pts)
    if why is not None:
        from ..deflarer.stage import WHY
        w = why[sc]
        out["lost_by_rule_pts"] = {name: pts(w == code) for name, code in WHY.items()}
    else:
        r = removed_by[sc]
        out["lost_by_rule_pts"] = {name: pts(r == i) for i, name in enumerate(stages)}
    return out


def glare_kept(ev: Events, src: np.ndarray, keep: np.ndarray, lamp, t0: int, onset_us: int) -> dict:
    """Where the glare a run keeps lies, in points of the overlay's glare events (each group adds
    up to 100 - glare removed): by the part of the glare (``glare_overlay.TERMS``, the part giving
    most of the light at the event's pixel), by distance from the lamp (``RINGS_PX``), and before
    or after ``onset_us`` from the lamp's switch-on."""
    g = src == GLARE
    ge = ev[g]
    kept = keep[g]
    n = max(int(g.sum()), 1)
    pts = (lambda m: float(100.0 * (kept & m).sum() / n))
    part = glare_part(lamp, ge, t0)
    return dict(kept_by_part_pts={name: pts(part == i) for i, name in enumerate(TERMS)},
                kept_by_distance_pts=by_ring(ge, lamp, t0, pts),
                kept_before_onset_pts=pts(ge.t < t0 + onset_us), kept_after_onset_pts=pts(ge.t >= t0 + onset_us))


def alone(cfg: PipelineConfig, name: str) -> PipelineConfig:
    """``cfg`` with only stage ``name`` (the deflarer without the denoiser's P(flare))."""
    sc = cfg.stage_configs[name]
    if name == "deflare":
        sc = replace(sc, blend=0.0)
    return PipelineConfig(stages=[name], device=cfg.device, stage_configs={name: sc})


def removed_png(path: Path, ev: Events, keep: np.ndarray, removed_by: np.ndarray,
                stages: list[str], title: str) -> Path:
    """input | kept | removed (each removed event's pixel in its stage's colour): ``viz``'s PNG."""
    return before_after_png(path, ev, ev[keep], title=title, removed=ev[~keep],
                            removed_stage=removed_by[~keep], stage_names=list(stages))


def stages_alone(recordings, cfg: PipelineConfig, base_dir) -> list[dict]:
    """(a): the share of each real recording's events every stage alone keeps."""
    rows = []
    for rec in recordings:
        row = dict(recording=rec.info.name, split=rec.info.split, events=len(rec.events))
        for name in cfg.stages:
            keep, _ = run(alone(cfg, name), base_dir, rec.events)
            row[name] = float(keep.mean()) if len(keep) else 1.0
        rows.append(row)
    return rows


def glare_runs(rec, lamps: dict, configs: dict, seconds: float, out: Path | None,
               onset_us: int = 60000, start_s: float = 0.0) -> list[dict]:
    """(b): every lamp over ``seconds`` of one recording from ``start_s`` into it, every named
    config. The lamps switch on at the segment's first event; ``glare_removed_lit`` counts only
    the glare after the first ``onset_us`` (a lamp that has been on for a while: a stage that
    needs a few windows of flicker to find a lamp cannot act on the first ones)."""
    ev = rec.events
    a = int(ev.t[0]) + int(round(start_s * 1e6))
    ev = ev[int((ev.t < a).sum()): int((ev.t < a + int(seconds * 1e6)).sum())]
    t0, t1 = int(ev.t[0]), int(ev.t[-1]) + 1
    base = {name: run(c, b, ev)[0] for name, (c, b) in configs.items()}
    rows = []
    for lname, lamp in lamps.items():
        glare, lab = render_overlay(lamp, ev.width, ev.height, t0, t1, seed=len(rows))
        both, src = overlay(ev, glare, lab)
        for name, (c, b) in configs.items():
            why = [] if list(c.stages) == ["deflare"] else None
            keep, removed_by = run(c, b, both, why=why)
            why = np.concatenate(why) if why else None
            scene_kept = keep[src == 0]  # the scene events, in their original order
            kept_alone = base[name]
            rows.append(dict(recording=rec.info.name, split=rec.info.split, start_s=start_s, lamp=lname, config=name,
                             glare_events=int((src == GLARE).sum()), core_events=int((src == CORE).sum()),
                             glare_removed=float(1 - keep[src == GLARE].mean()) if (src == GLARE).any() else None,
                             glare_removed_lit=(float(1 - keep[lit].mean()) if (lit := (src == GLARE) & (both.t >= t0 + onset_us)).any()
                                                else None),
                             core_kept=float(keep[src == CORE].mean()) if (src == CORE).any() else None,
                             scene_kept_vs_no_overlay=float((scene_kept & kept_alone).sum() / max(kept_alone.sum(), 1)),
                             **scene_loss(both, src, keep, kept_alone, lamp, t0, removed_by, list(c.stages), why),
                             **glare_kept(both, src, keep, lamp, t0, onset_us)))
            if out is not None and lname in ("mains_100hz", "pwm_100hz_moving"):
                at = f"_at{start_s:g}s" if start_s else ""
                removed_png(out / f"{rec.info.name}{at}_{lname}_{name}.png", both, keep, removed_by, c.stages,
                            f"{rec.info.name}{at.replace('_', ' ')} + {lname} overlay, {name}")
    return rows


def main(argv=None) -> int:
    from .real.recordings import real_recordings
    ap = argparse.ArgumentParser(prog="python -m eventfx_core.evaluate.flare_real", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="out/flare_real")
    ap.add_argument("--config", default=None, help="pipeline config (default config/denoise.yaml)")
    ap.add_argument("--deflare-config", default=None, help="deflarer-alone config (default config/deflare.yaml)")
    ap.add_argument("--seconds", type=float, default=0.3, help="overlay runs use this much of each scene")
    ap.add_argument("--max-s", type=float, default=2.0, help="read at most this much of each recording")
    ap.add_argument("--lamp-at", default=None, metavar="FX,FY",
                    help="place every lamp at this fraction of the sensor's width and height (default 0.78,0.25)")
    ap.add_argument("--onset-ms", type=float, default=60.0,
                    help="the 'lit' glare column counts glare from this long after the lamp switched on")
    ap.add_argument("--starts", default="0", metavar="S1,S2,...",
                    help="overlay runs start this many seconds into each scene, each that leaves --seconds of it "
                         "(default 0: one run from its start); more starts give more scenes to tune on")
    args = ap.parse_args(argv)
    try:
        starts = sorted({float(v) for v in args.starts.split(",")})
    except ValueError:
        starts = []
    if not starts or not all(math.isfinite(v) and v >= 0 for v in starts):
        raise ConfigError(f"--starts: seconds >= 0 separated by commas, got {args.starts!r}")
    at = None
    if args.lamp_at is not None:
        try:
            at = tuple(float(v) for v in args.lamp_at.split(","))
        except ValueError:
            at = ()
        if len(at) != 2 or not all(0.0 <= v <= 1.0 for v in at):
            raise ConfigError(f"--lamp-at: two fractions in [0, 1] separated by a comma, got {args.lamp_at!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = load_denoise_config(args.config)
    dcfg = load_denoise_config(args.deflare_config or Path(pipe.base_dir) / "deflare.yaml")
    recordings = real_recordings(max_s=args.max_s)
    report = dict(stages_alone=stages_alone(recordings, pipe.pipeline, pipe.base_dir))
    for rec in recordings:  # the whole pipeline on every real recording, as it runs by default
        keep, removed_by = run(pipe.pipeline, pipe.base_dir, rec.events)
        removed_png(out / f"{rec.info.name}_pipeline.png", rec.events, keep, removed_by, pipe.pipeline.stages,
                    f"{rec.info.name} (real, no flare), default pipeline")
    configs = {"deflare": (dcfg.pipeline, dcfg.base_dir), "pipeline": (pipe.pipeline, pipe.base_dir)}
    report["glare"] = []
    for rec in recordings:
        if rec.events.sensor_size == (346, 260) and rec.info.name != "emlb_demo_evt3":  # one copy of that scene
            lamps = standard_lamps(346, 260)
            if at is not None:
                lamps = {k: replace(v, x=at[0] * 346, y=at[1] * 260) for k, v in lamps.items()}
            span_s = (int(rec.events.t[-1]) - int(rec.events.t[0])) * 1e-6
            for start in starts:
                if start == 0 or start + args.seconds <= span_s:
                    report["glare"] += glare_runs(rec, lamps, configs, args.seconds, out, int(args.onset_ms * 1000),
                                                  start)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _scene(r: dict) -> str:
    """A glare row's scene: the recording, and where in it the segment starts when not at 0."""
    return r["recording"] + (f" @{r['start_s']:g} s" if r.get("start_s") else "")


def markdown(report: dict) -> str:
    rows = report["stages_alone"]
    names = [k for k in rows[0] if k not in ("recording", "split", "events")]
    lines = ["(a) share of each real recording's events every stage alone keeps", "",
             "| recording | split | events | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    for r in rows:
        lines.append(f"| {r['recording']} | {r['split']} | {r['events']:,} | "
                     + " | ".join(f"{r[n]:.4f}" for n in names) + " |")
    lines += ["", "(b) glare overlays on real scenes", "",
              "| recording | split | lamp | run | glare events | glare removed | glare removed, lamp on >= onset | "
              "core kept | scene kept vs no overlay |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["glare"]:
        f = (lambda v: "-" if v is None else f"{100 * v:.1f} %")
        lines.append(f"| {_scene(r)} | {r['split']} | {r['lamp']} | {r['config']} | {r['glare_events']:,} | "
                     f"{f(r['glare_removed'])} | {f(r.get('glare_removed_lit'))} | {f(r['core_kept'])} | "
                     f"{f(r['scene_kept_vs_no_overlay'])} |")
    lines += ["", "(c) the scene an overlay run loses: where and why, in points of the scene kept without the "
              "overlay (columns of a group add up to 100 - scene kept). Ceiling +-N ms: the share of the scene "
              "with no overlay event at its pixel within +-N ms (a per-event rule that removes all such glare "
              "keeps at most this much); at glare px: lost scene events that share a pixel and +-N ms with "
              "glare. Rules: the deflarer alone (U-Net share let through the flicker lock by an alternating "
              "pixel or by phase agreement; streak where the U-Net would keep), the pipeline: its stages.", ""]
    rows = [r for r in report["glare"] if "ceiling_2ms" in r]
    if rows:
        dist = list(rows[0]["lost_by_distance_pts"])
        lines += ["| recording | lamp | run | scene kept | ceiling +-2 / 20 ms | lost at glare px +-2 / 20 ms | "
                  "lost by distance " + " / ".join(f"{d} px" for d in dist) + " | lost by rule or stage |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            rules = ", ".join(f"{k} {v:.2f}" for k, v in r["lost_by_rule_pts"].items() if v > 0) or "-"
            lines.append(f"| {_scene(r)} | {r['lamp']} | {r['config']} | {100 * r['scene_kept_vs_no_overlay']:.1f} % | "
                         f"{100 * r['ceiling_2ms']:.1f} / {100 * r['ceiling_20ms']:.1f} % | "
                         f"{r['lost_near_2ms_pts']:.2f} / {r['lost_near_20ms_pts']:.2f} | "
                         + " / ".join(f"{v:.2f}" for v in r["lost_by_distance_pts"].values()) + f" | {rules} |")
    rows = [r for r in report["glare"] if "kept_by_part_pts" in r]
    if rows:
        parts, dist = list(rows[0]["kept_by_part_pts"]), list(rows[0]["kept_by_distance_pts"])
        lines += ["", "(d) the glare an overlay run keeps: where, in points of the overlay's glare events (each "
                  "group adds up to 100 - glare removed). By part: the part of the glare giving most of the light "
                  "at the event's pixel (halo, rays, streak, ghost reflections); by distance from the lamp; in the "
                  "first onset ms after the lamp switched on, or after.", "",
                  "| recording | lamp | run | glare removed | kept by part " + " / ".join(parts)
                  + " | kept by distance " + " / ".join(f"{d} px" for d in dist) + " | kept before / after onset |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            removed = "-" if r["glare_removed"] is None else f"{100 * r['glare_removed']:.1f} %"
            lines.append(f"| {_scene(r)} | {r['lamp']} | {r['config']} | {removed} | "
                         + " / ".join(f"{v:.1f}" for v in r["kept_by_part_pts"].values()) + " | "
                         + " / ".join(f"{v:.1f}" for v in r["kept_by_distance_pts"].values()) + " | "
                         f"{r['kept_before_onset_pts']:.1f} / {r['kept_after_onset_pts']:.1f} |")
    return "\n".join(lines) + "\n"


def cli(argv=None) -> int:
    """``main`` with bad input reported in one line (exit 2), never a traceback."""
    import sys
    from ..errors import EventfxError
    try:
        return main(argv)
    except (EventfxError, OSError) as exc:
        print(f"eventfx: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
