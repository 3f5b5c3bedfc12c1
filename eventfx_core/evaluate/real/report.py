"""report.md, report.json and curves.png of the real-data benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import EventfxError

AUC_ORDER = ("pipeline", "mamba", "stcf", "baf", "dv_ba", "dv_knoise", "dv_fastdecay", "dv_hull")


def _f(v, nd: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


def markdown(report: dict, command: str = "") -> str:
    ref = report["reference"]
    names = [n for n in AUC_ORDER if n in report["methods"]] + [
        n for n in report["methods"] if n not in AUC_ORDER]
    lines = ["# eventfx real-data benchmark (DND21 protocol)", ""]
    if command:
        lines += [f"Made by `{command}`.", ""]
    lines += ["Signal: every event of a real recording (its own sensor noise counts as real, for every "
              "method alike); noise: injected with known labels. `kept`: share of real events kept; "
              "`removed`: share of injected noise removed. dv hull: the upper hull of dv-processing's "
              "BackgroundActivity, KNoise and FastDecay filters over their parameters.", "",
              "## Recordings", "", "| recording | split | sensor | duration (s) | events | licence | note |",
              "|---|---|---|---|---|---|---|"]
    for r in report["recordings"]:
        lines.append(f"| {r['name']} | {r['split']} | {r['sensor']} | {r['duration_s']:.2f} | "
                     f"{r['events']:,} | {r['licence']} | {r['note']} |")
    lines += ["", f"## `{ref}` at its operating point against the classic filters at the same share kept", "",
              f"| recording | split | noise | Hz/px | {ref} kept | {ref} removed | dv hull removed | "
              "margin | largest possible margin (1 - dv hull) | dv best single setting (margin) | "
              "best classic (removed) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        m = row["methods"]
        r = m[ref]
        dv = m.get("dv_hull", {}).get("removed_at_reference_kept")
        best = r["best_classic_at_kept"]
        single = m.get("dv_hull", {}).get("removed_single_at_reference_kept")
        lines.append(f"| {row['recording']} | {row['split']} | {row['noise']} | {row['rate_hz']:g} | "
                     f"{_f(r['default']['kept'])} | {_f(r['default']['removed'])} | {_f(dv)} | "
                     f"{_f(r.get('margin_over_dv_hull'), 3) if dv is not None else 'n/a'} | "
                     f"{_f(1 - dv) if dv is not None else 'n/a'} | "
                     f"{_f(single)} ({_f(r['default']['removed'] - single) if single is not None else 'n/a'}) | "
                     f"{best} ({_f(m[best]['removed_at_reference_kept'])}) |")
    lines += ["", "The hull mixes neighbouring settings (event by event at random: reachable); the 'best single "
              "setting' is the best one dv-processing setting that keeps at least as many real events."]
    calibrated = [row for row in report["rows"] if "calibration" in row]
    if calibrated:
        lines += ["", f"## `calibrated`: {ref} with the overlay of `eventfx calibrate` (fitted on the condition's "
                  "noise alone, a new draw)", "",
                  "| recording | split | noise | Hz/px | hot pixels | background Hz/px | stcf window (us) | "
                  f"{ref} kept/removed (margin) | calibrated kept/removed (margin at its own kept) | AUC {ref} / calibrated |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in calibrated:
            m, c = row["methods"], row["calibration"]
            a, b = m[ref], m["calibrated"]
            lines.append(f"| {row['recording']} | {row['split']} | {row['noise']} | {row['rate_hz']:g} | "
                         f"{c['hot_pixels']} | {c['background_hz']:.2f} | {c['stcf.time_window_us']} | "
                         f"{_f(a['default']['kept'])}/{_f(a['default']['removed'])} "
                         f"({_f(a.get('margin_over_dv_hull_at_own_kept'))}) | "
                         f"{_f(b['default']['kept'])}/{_f(b['default']['removed'])} "
                         f"({_f(b.get('margin_over_dv_hull_at_own_kept'))}) | {_f(a['auc'])} / {_f(b['auc'])} |")
    lines += ["", "## ROC-AUC (real kept vs noise kept; filters without a score: hull of the sweep)", "",
              "| recording | noise | Hz/px | " + " | ".join(names) + " | best |",
              "|---|---|---|" + "---|" * (len(names) + 1)]
    for row in report["rows"]:
        m = row["methods"]
        aucs = {n: m[n]["auc"] for n in names if n in m}
        best = max(aucs, key=lambda n: aucs[n])
        lines.append(f"| {row['recording']} | {row['noise']} | {row['rate_hz']:g} | "
                     + " | ".join(_f(aucs.get(n)) for n in names) + f" | {best} |")
    lines += ["", "## Default operating points (each method's own defaults)", "",
              "| recording | noise | Hz/px | "
              + " | ".join(f"{n} kept/removed" for n in names if n != "dv_hull") + " |", "|---|---|---|" + "---|" * (len(names) - ("dv_hull" in names))]
    for row in report["rows"]:
        m = row["methods"]
        cells = []
        for n in names:
            if n == "dv_hull":
                continue
            d = m.get(n, {}).get("default")
            cells.append(f"{_f(d['kept'], 2)}/{_f(d['removed'], 2)}" if d else "n/a")
        lines.append(f"| {row['recording']} | {row['noise']} | {row['rate_hz']:g} | "
                     + " | ".join(cells) + " |")
    for split in ("tune", "report"):
        rows = [r for r in report["rows"] if r["split"] == split]
        if not rows:
            continue
        margins = [r["methods"][ref].get("margin_over_best_classic") for r in rows]
        hi = [r for r in rows if r["methods"][ref]["default"]["kept"] >= 0.9]
        lines += ["", f"**{split} split**: {ref} margin over the best classic curve at its share kept: "
                  f"min {_f(min(margins))}, mean {_f(float(np.mean(margins)))} over {len(rows)} conditions; "
                  f"{len(hi)} of them keep >= 0.9 of the real events."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path, split: str | None = "report") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in report["rows"] if split is None or r["split"] == split] or report["rows"]
    recs = list(dict.fromkeys(r["recording"] for r in rows))
    conds = list(dict.fromkeys((r["noise"], r["rate_hz"]) for r in rows))
    fig, axes = plt.subplots(len(recs), len(conds), figsize=(2.6 * len(conds), 2.5 * len(recs)),
                             squeeze=False, sharex=True, sharey=True)
    styles = {"pipeline": ("k", "-", 2.0), "mamba": ("tab:purple", "-", 1.2), "stcf": ("tab:blue", "--", 1.2),
              "baf": ("tab:cyan", ":", 1.2), "dv_hull": ("tab:red", "-", 1.2)}
    for row in rows:
        ax = axes[recs.index(row["recording"])][conds.index((row["noise"], row["rate_hz"]))]
        for name, m in row["methods"].items():
            if name not in styles and name not in report["methods"][:2]:
                continue
            c, ls, lw = styles.get(name, ("tab:green", "-", 1.2))
            fpr, tpr = m["curve"]
            ax.plot(1 - np.asarray(fpr), tpr, color=c, ls=ls, lw=lw, label=name)
            if m["default"] and name != "dv_hull":
                ax.plot(m["default"]["removed"], m["default"]["kept"], "o", color=c, ms=3)
        ax.set_xlim(0.5, 1.0)
        ax.set_ylim(0.5, 1.0)
        ax.set_title(f"{row['recording']} {row['noise']} {row['rate_hz']:g} Hz", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("noise removed", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("real kept", fontsize=7)
    axes[0][0].legend(fontsize=5, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, report: dict, command: str = "") -> str:
    """Write report.md, report.json and curves.png under ``out``; returns the markdown."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EventfxError(f"--out {out}: cannot create the report folder ({exc.strerror})") from None
    text = markdown(report, command)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    plot(report, out / "curves.png")
    return text
