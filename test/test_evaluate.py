"""eventfx evaluate: metrics on hand-made cases, ROC/AUC against a brute-force oracle, and the
command on a tiny generated dataset."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from eventfx_core.cli.main import main
from eventfx_core.evaluate.metrics import LabelCounts, keep_remove_metrics, roc_auc, roc_curve


def test_metrics_hand_made():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])
    keep = np.array([1, 1, 0, 0, 0, 0, 1, 0, 1, 1], bool)
    c = LabelCounts()
    c.add(keep[:4], labels[:4])  # counts add up across calls
    c.add(keep[4:], labels[4:])
    m = keep_remove_metrics(c)
    # kept: signal 2/3, noise 1/4, flare 1/2, light source 1/1 -> 5 kept, 3 of them correct
    assert m["keep_precision"] == pytest.approx(3 / 5)
    assert m["keep_recall"] == pytest.approx(3 / 4)
    assert m["keep_f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # removed: signal 1, noise 3, flare 1 -> 5 removed, 4 correct, of 6 to remove
    assert m["remove_precision"] == pytest.approx(4 / 5)
    assert m["remove_recall"] == pytest.approx(4 / 6)
    assert m["noise_removed"] == pytest.approx(3 / 4)
    assert m["flare_removed"] == pytest.approx(1 / 2)
    assert m["signal_kept"] == pytest.approx(2 / 3)
    assert m["light_source_kept"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(7 / 10)
    # per class: 1 signal event was wrongly removed; flare 1 removed -> P 1/2, R 1/2
    assert m["flare_precision"] == pytest.approx(1 / 2) and m["flare_f1"] == pytest.approx(1 / 2)
    assert m["noise_precision"] == pytest.approx(3 / 4) and m["noise_f1"] == pytest.approx(3 / 4)


def test_metrics_missing_class_is_nan():
    c = LabelCounts()
    c.add(np.array([True, False]), np.array([0, 1]))
    m = keep_remove_metrics(c)
    assert np.isnan(m["flare_removed"]) and np.isnan(m["light_source_kept"])
    assert m["noise_removed"] == 1.0 and m["keep_precision"] == 1.0


def mann_whitney_auc(score, pos):
    s1, s0 = score[pos], score[~pos]
    gt = (s1[:, None] > s0[None, :]).sum()
    eq = (s1[:, None] == s0[None, :]).sum()
    return (gt + 0.5 * eq) / (len(s1) * len(s0))


@pytest.mark.parametrize("seed", range(4))
def test_auc_matches_pairwise_oracle(seed):
    rng = np.random.default_rng(seed)
    n = 300
    pos = rng.random(n) < 0.4
    score = np.round(rng.normal(pos * 0.8, 1.0), 1)  # rounding makes ties
    assert roc_auc(score, pos) == pytest.approx(mann_whitney_auc(score, pos), abs=1e-12)


def test_roc_edges():
    fpr, tpr, thr = roc_curve(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0], bool))
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1], bool)) == 0.0
    assert roc_auc(np.ones(6), np.array([1, 0, 1, 0, 1, 0], bool)) == 0.5
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and thr[0] == np.inf
    assert np.isnan(roc_auc(np.ones(3), np.ones(3, bool)))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaldata")
    cfg = d / "gen.yaml"
    cfg.write_text(yaml.safe_dump({"width": 40, "height": 30, "train_sequences": 0, "val_sequences": 0,
                                   "test_sequences": 2, "duration_ms_min": 60.0, "duration_ms_max": 60.0,
                                   "flare": {"probability": 1.0}}))
    assert main(["generate", "--config", str(cfg), "--out", str(d / "data"), "--quiet", "--workers", "1"]) == 0
    return d / "data"


def test_evaluate_command(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["evaluate", "--data", str(tiny_dataset), "--methods", "baf,refractory,dv_baf",
               "--out", str(out), "--no-noise-bag", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| baf |" in text and "| dv_baf |" in text
    assert (out / "report.md").read_text().strip() in text
    rep = json.loads((out / "report.json").read_text())
    assert (out / "roc.png").stat().st_size > 1000
    total = np.array(rep["methods"]["baf"]["counts_total"])
    assert total.sum() == rep["summary"]["events"] and total[2] > 0  # flare present
    # the refractory filter with default settings keeps isolated events: it must keep the
    # (time-sparse) light source and a large part of everything else
    r = rep["methods"]["refractory"]
    assert 0 <= r["noise_removed"] <= 1 and r["signal_kept"] > 0.5
    # numbers in the JSON are the metrics recomputed from its own counts
    kept = np.array(rep["methods"]["baf"]["counts_kept"])
    assert rep["methods"]["baf"]["noise_removed"] == pytest.approx(1 - kept[1] / total[1])
    per = rep["methods"]["baf"]["per_archive"]
    assert [p["archive"] for p in per] == ["seq_00000.h5", "seq_00001.h5"]
    assert sum(p["events"] for p in per) == total.sum()
    # flare by the kind of light: the kinds of the two sequences, counts that add up
    kinds = {p["flare_kind"] for p in per}
    assert kinds <= {"steady", "mains", "pwm"} and kinds
    by = rep["methods"]["baf"]["flare_by_kind"]
    assert set(by) == kinds and sum(b["flare_events"] for b in by.values()) == total[2]
    assert sum(b["sequences"] for b in by.values()) == 2
    kept_flare = sum(p["flare_kept"] for p in per)
    assert kept_flare == kept[2]
    if kept_flare:
        assert sum(b["share_of_kept_flare"] for b in by.values()) == pytest.approx(1.0)
    for kind, b in by.items():
        rows = [p for p in per if p["flare_kind"] == kind]
        assert b["flare_removed"] == pytest.approx(1 - sum(p["flare_kept"] for p in rows) / b["flare_events"])
    assert "Flare by the kind of light" in text and all(f" {k} (" in text for k in kinds)


def test_evaluate_on_real_noise_bag(tiny_dataset, tmp_path, shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    rc = main(["evaluate", "--data", str(tiny_dataset), "--methods", "baf", "--out", str(tmp_path),
               "--noise-bag", str(bag), "--quiet"])
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert 0 <= rep["methods"]["baf"]["real_noise_kept"] < 0.5  # BAF removes most real noise


def test_unavailable_method_is_reported_not_hidden(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dv_processing", None)  # import fails
    rc = main(["evaluate", "--data", str(tiny_dataset), "--methods", "baf,dv_baf", "--out", str(tmp_path),
               "--no-noise-bag", "--quiet"])
    assert rc == 1
    cap = capsys.readouterr()
    assert "dv_baf not run" in cap.err and "| dv_baf | not run:" in cap.out


def test_evaluate_bad_input(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "none"), "--methods", "baf", "--quiet"]) == 2
    assert main(["evaluate", "--data", str(tmp_path), "--methods", "baf", "--quiet"]) == 2
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "x.h5").write_bytes(b"not hdf5")
    assert main(["evaluate", "--data", str(tmp_path), "--methods", "baf", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "no .h5 archives" in err and "x.h5" in err


def test_unknown_method(tiny_dataset, capsys):
    assert main(["evaluate", "--data", str(tiny_dataset), "--methods", "baf,nope", "--quiet",
                 "--no-noise-bag"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


class _LaggingWindowStage:
    """A windowed stage that decides an event (keep if x is even) two pushes after it came."""
    name = "lag"

    def __init__(self):
        self.reset()

    def reset(self):
        self.buf = []

    def push(self, ev, flare=None):
        self.buf.append(ev.x % 2 == 0)
        if len(self.buf) > 2:
            return self.buf.pop(0)
        return np.zeros(0, bool)

    def flush(self):
        out = np.concatenate(self.buf) if self.buf else np.zeros(0, bool)
        self.buf = []
        return out


def test_windowed_stage_decisions_line_up_with_events(make_events):
    from eventfx_core.evaluate.methods import StageMethod, message_bounds
    n = 5000
    ev = make_events(0, n, 30, 20, span_us=95_000)
    bounds = message_bounds(ev)
    assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == 10
    assert all(b[1] == c[0] for b, c in zip(bounds, bounds[1:]))
    m = StageMethod.__new__(StageMethod)
    m.name, m.stage = "lag", _LaggingWindowStage()
    keep, score = m.run(ev)
    assert np.array_equal(keep, ev.x % 2 == 0) and np.array_equal(score, keep.astype(np.float32))
    keep2, _ = m.run(ev)  # state is reset between sequences
    assert np.array_equal(keep, keep2)


def test_score_order_reads_the_same_pipeline_score_as_evaluate(tmp_path, capsys):
    """The score-reordering analysis (eventfx_core.evaluate.score_order) recovers each event's
    stage and graded score from the pipeline's decisions: its lexicographic column is exactly
    `eventfx evaluate`'s pipeline noise AUC on the same test split."""
    from eventfx_core.evaluate import score_order
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(yaml.safe_dump({"width": 40, "height": 30, "train_sequences": 0, "val_sequences": 1,
                                   "test_sequences": 1, "duration_ms_min": 60.0, "duration_ms_max": 60.0}))
    assert main(["generate", "--config", str(cfg), "--out", str(tmp_path / "data"), "--quiet", "--workers", "1"]) == 0
    config = str(Path(__file__).resolve().parents[1] / "config" / "denoise.yaml")
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--config", config, "--methods", "pipeline",
                 "--out", str(tmp_path / "rep"), "--no-noise-bag", "--quiet"]) == 0
    auc = json.loads((tmp_path / "rep" / "report.json").read_text())["methods"]["pipeline"]["noise_auc"]
    capsys.readouterr()
    assert score_order.main(["--data", str(tmp_path / "data"), "--config", config]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic test"))
    lexi, fitted, bound = (float(v) for v in row.strip("| ").split(" | ")[1:])
    assert 0.5 < auc < 1 and lexi == pytest.approx(auc, abs=5e-5)
    assert 0 <= fitted <= 1 and 0 <= bound <= 1
