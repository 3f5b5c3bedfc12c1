"""The real-data benchmark (``eventfx realbench``) end to end on a tiny real clip, and its parts."""
import json

import numpy as np
import pytest

from eventfx_core.cli.main import main
from eventfx_core.evaluate.real.curves import hull, point, removed_at, roc_auc_of
from eventfx_core.evaluate.real.noise import NoiseModel, inject, make_noise
from eventfx_core.events import Events


@pytest.mark.slow  # ~10-20 s: every method over 4 noise conditions
def test_end_to_end_on_a_tiny_real_clip(shared_data, tmp_path, capsys):
    out = tmp_path / "rb"
    rc = main(["realbench", "--recordings", "evl_sample", "--rates", "1,5", "--out", str(out),
               "--data", str(shared_data), "--quiet", "--calibrate", "0.5"])
    assert rc == 0
    text = (out / "report.md").read_text()
    assert "evl_sample" in text and "shiba24/event-vision-library, MIT" in text
    assert (out / "curves.png").stat().st_size > 10_000
    report = json.loads((out / "report.json").read_text())
    assert [(r["noise"], r["rate_hz"]) for r in report["rows"]] == [
        ("uniform", 1.0), ("uniform", 5.0), ("resampled", 1.0), ("resampled", 5.0)]
    for row in report["rows"]:
        m = row["methods"]
        assert row["signal_events"] == 6676
        # 346 x 260 pixels over 0.17 s: the injected count is close to rate * pixels * seconds
        expect = row["rate_hz"] * 346 * 260 * report["recordings"][0]["duration_s"]
        assert abs(row["noise_events"] - expect) < 5 * np.sqrt(expect) + 0.02 * expect
        assert set(m) >= {"pipeline", "mamba", "stcf", "baf", "dv_ba", "dv_knoise", "dv_fastdecay", "dv_hull"}
        # eventfx's BAF and dv-processing's are the same filter: the same points on the same events
        # (only dv's first-window start differs, test_filters_dv.py), hence the same hull area
        assert m["baf"]["auc"] == pytest.approx(m["dv_ba"]["auc"], abs=0.01)
        # the dv hull covers each of its filters
        for name in ("dv_ba", "dv_knoise", "dv_fastdecay"):
            assert m["dv_hull"]["auc"] >= m[name]["auc"] - 1e-9
        ref = m["pipeline"]
        assert ref["margin_over_dv_hull"] == pytest.approx(
            ref["default"]["removed"] - m["dv_hull"]["removed_at_reference_kept"])
        for name in m:
            assert 0.0 <= m[name]["auc"] <= 1.0
        # calibrated on the condition's noise alone: resampled noise has hot pixels, uniform none
        assert "calibrated" in m and (row["calibration"]["hot_pixels"] > 0) == (row["noise"] == "resampled")
        assert abs(row["calibration"]["background_hz"] - row["rate_hz"]) < 0.5 * row["rate_hz"]
        assert m["dv_hull"]["removed_single_at_reference_kept"] <= m["dv_hull"]["removed_at_reference_kept"] + 1e-9
    assert "largest possible margin" in text and "## `calibrated`" in text


def test_bad_rates_is_one_line(shared_data, tmp_path, capsys):
    args = ["realbench", "--recordings", "evl_sample", "--rates", "0", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["eventfx: error: --rates: give positive numbers, got '0'"]


@pytest.mark.parametrize("seconds", ["nan", "inf"])
def test_non_finite_calibrate_seconds_is_one_line(seconds, shared_data, tmp_path, capsys):
    args = ["realbench", "--recordings", "evl_sample", "--calibrate", seconds, "--no-dv", "-q",
            "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eventfx: error: --calibrate")


def test_an_existing_report_is_kept_unless_overwrite(shared_data, tmp_path, capsys):
    out = tmp_path / "rb"
    out.mkdir()
    (out / "report.md").write_text("the user's report")
    args = ["realbench", "--recordings", "evl_sample", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and "report.md" in err[0]
    assert (out / "report.md").read_text() == "the user's report"
    assert not (out / "report.json").exists()  # refused before any work


def test_libcaer_cmp_bag_as_its_authors_committed_it(shared_data):
    """metadata.yaml without a storage plugin: the io layer repairs it; event_camera_py's own figures."""
    from eventfx_core.evaluate.real.recordings import read_events
    ev = read_events(shared_data / "ros2_bags" / "test_events_2_libcaer_cmp")
    assert (ev.width, ev.height) == (346, 260)
    assert int((ev.p == 0).sum()) == 360_223 and int((ev.p == 1).sum()) == 211_043


def test_uniform_noise_and_labels():
    like = Events.from_arrays([0, 1_000_000], [0, 1], [0, 1], [1, 0], 100, 50)
    noise = make_noise("uniform", 2.0, like, np.random.default_rng(1))
    assert abs(len(noise) - 10_000) < 500  # 2 Hz * 5000 px * 1 s
    assert np.all(np.diff(noise.t) >= 0) and noise.t.min() >= 0 and noise.t.max() <= 1_000_000
    assert 0.45 < noise.p.mean() < 0.55
    ev, is_signal = inject(like, noise)
    assert len(ev) == len(noise) + 2 and is_signal.sum() == 2
    assert np.all(np.diff(ev.t) >= 0)
    assert ev.t[is_signal].tolist() == [0, 1_000_000]


def test_resampled_noise_keeps_the_spread_and_the_hot_pixels():
    # a noise recording: 1 hot pixel at 1 kHz, the rest sparse
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 1_000_000, 3000))
    x = np.where(np.arange(3000) < 1000, 5, rng.integers(0, 40, 3000))
    y = np.where(np.arange(3000) < 1000, 5, rng.integers(0, 40, 3000))
    o = np.argsort(t)
    model = NoiseModel.fit(Events.from_arrays(t[o], x[o], y[o], np.ones(3000), 40, 40))
    like = Events.from_arrays([0, 2_000_000], [0, 0], [0, 0], [1, 1], 200, 100)
    noise = make_noise("resampled", 1.0, like, np.random.default_rng(2), model)
    assert abs(len(noise) / (200 * 100 * 2.0) - 1.0) < 0.15  # mean rate as asked
    counts = np.bincount(noise.y.astype(int) * 200 + noise.x, minlength=200 * 100)
    assert counts.max() > 50 * counts.mean()  # hot pixels survive the resampling
    assert noise.p.mean() == 1.0  # the drawn pixels' ON share


def test_hull_and_comparison_at_a_share_kept():
    pts = [{"kept": 0.9, "removed": 0.8, "settings": {}}, {"kept": 0.5, "removed": 0.9, "settings": {}},
           {"kept": 0.6, "removed": 0.5, "settings": {}}]  # the last lies below the hull
    fpr, tpr = hull(pts)
    assert list(zip(fpr.round(3), tpr.round(3))) == [(0.0, 0.0), (0.1, 0.5), (0.2, 0.9), (1.0, 1.0)]
    assert removed_at((fpr, tpr), 0.9) == pytest.approx(0.8)
    assert removed_at((fpr, tpr), 0.7) == pytest.approx(0.85)
    assert roc_auc_of((fpr, tpr)) == pytest.approx(0.5 * 0.1 * 0.5 + 0.1 * 0.7 + 0.8 * 0.95)
    p = point(np.array([1, 0, 1, 1], bool), np.array([1, 1, 0, 0], bool), {})
    assert (p["kept"], p["removed"]) == (0.5, 0.0)


def test_training_archives_come_from_the_tune_split_only(shared_data, tmp_path, capsys):
    from eventfx_core.io.archive import read_archive
    assert main(["realbench", "--write-train", str(tmp_path / "t"), "--split", "report"]) == 2
    assert "only the tune split" in capsys.readouterr().err
    rc = main(["realbench", "--write-train", str(tmp_path / "t"), "--recordings", "libcaer_cmp",
               "--copies", "1", "--max-seconds", "0.05", "--data", str(shared_data)])
    assert rc == 0
    a = read_archive(tmp_path / "t" / "train" / "real_libcaer_cmp_00.h5")
    assert a.meta["source"] == "libcaer_cmp" and 0.5 <= a.meta["rate_hz"] <= 6.0
    assert set(np.unique(a.labels)) == {0, 1}  # signal (the recording) and injected noise
    assert (tmp_path / "t" / "val" / "real_libcaer_cmp_00.h5").exists()
