"""The report of ``eventfx evaluate``: a markdown table, JSON and a ROC plot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

COLUMNS = (  # (key, header)
    ("keep_precision", "keep P"), ("keep_recall", "keep R"), ("keep_f1", "keep F1"),
    ("remove_precision", "remove P"), ("remove_recall", "remove R"), ("remove_f1", "remove F1"),
    ("noise_removed", "noise removed"), ("noise_f1", "noise F1"),
    ("flare_removed", "flare removed"), ("flare_precision", "flare P"), ("flare_f1", "flare F1"),
    ("signal_kept", "background kept"), ("light_source_kept", "light source kept"),
    ("noise_auc", "noise-vs-signal AUC"), ("real_noise_kept", "real noise bag kept"),
    ("events_per_s", "events/s"),
)


def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if key == "events_per_s":
        return f"{v / 1e6:.2f} M"
    if key == "noise_auc":
        return f"{v:.3f}"
    return f"{100 * v:.1f} %"


def markdown_table(results: dict[str, dict], skipped: dict[str, str]) -> str:
    head = "| method | " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [f"| {name} | " + " | ".join(_fmt(k, r.get(k)) for k, _ in COLUMNS) + " |"
            for name, r in results.items()]
    rows += [f"| {name} | not run: {why} |" + " |" * (len(COLUMNS) - 1) for name, why in skipped.items()]
    return "\n".join([head, sep, *rows])


def flare_kind_table(results: dict[str, dict]) -> str:
    """Flare removed per kind of light (steady, mains, PWM), and that kind's share of the flare
    each method keeps; "" when no archive has a flare of a known kind."""
    # every method ran on the same archives: the first one's breakdown gives the kinds and counts
    first = next((r["flare_by_kind"] for r in results.values() if r.get("flare_by_kind")), {})
    kinds = sorted(k for k in first if k != "unknown")
    if not kinds:
        return ""
    head = "| method | " + " | ".join(
        f"{k} ({first[k]['sequences']} seq., {first[k]['flare_events']} flare events)" for k in kinds) + " |"
    rows = []
    for name, r in results.items():
        by = r.get("flare_by_kind", {})
        cells = [f"{_fmt('flare_removed', by[k]['flare_removed'])} removed, "
                 f"{_fmt('flare_removed', by[k]['share_of_kept_flare'])} of the kept flare" if k in by else "-"
                 for k in kinds]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, "|---" * (len(kinds) + 1) + "|", *rows])


def write_report(out: Path, summary: dict, results: dict[str, dict], skipped: dict[str, str],
                 rocs: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Write report.md, report.json and roc.png into ``out``; return the markdown text."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# eventfx evaluate", "",
             f"Data: {summary['data']} ({summary['archives']} archives, {summary['events']} events; "
             f"labels: {summary['label_counts']}).",
             f"Real noise bag: {summary.get('noise_bag') or 'none'}.", "",
             "keep = signal + light source, remove = noise + flare; AUC = noise (negative) vs "
             "signal (positive) from each method's score. Per class (noise, flare): recall = "
             "its share removed, precision = its share of the removed events that are it or "
             "signal / light source (removing noise is no false flare alarm), F1 of the two.", "",
             markdown_table(results, skipped), "",
             "events/s: wall time of each method over the archives in 10 ms messages, on this "
             "machine; for dv_baf it includes copying every event into a dv.EventStore from Python, "
             "so it understates dv-processing's own speed.", ""]
    by_kind = flare_kind_table(results)
    if by_kind:
        lines += ["Flare by the kind of light behind it (from each sequence's metadata): the share of "
                  "its flare events removed, and its share of all flare events the method keeps.", "",
                  by_kind, ""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    clean = json.loads(json.dumps({"summary": summary, "methods": results, "skipped": skipped},
                                  default=float).replace("NaN", "null"))
    (out / "report.json").write_text(json.dumps(clean, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr) in rocs.items():
        auc = results.get(name, {}).get("noise_auc")
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})" if auc is not None and not math.isnan(auc) else name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("noise kept (false positive rate)")
    ax.set_ylabel("signal kept (true positive rate)")
    ax.set_title("noise vs signal ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    return text
