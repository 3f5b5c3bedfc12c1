"""Glare overlays for the real-scene flare benchmark (eventfx_core/evaluate/glare_overlay.py)."""
import numpy as np
import pytest

from eventfx_core.evaluate.glare_overlay import CORE, GLARE, Lamp, overlay, render_overlay, standard_lamps
from eventfx_core.events import Events


def test_a_flickering_lamp_fires_at_its_rate_and_a_steady_static_one_not_at_all():
    lamp = Lamp(40.0, 30.0, "mains", 100.0, halo_px=4.0, ray_px=8.0, streak_px=10.0, ghosts=())
    ev, lab = render_overlay(lamp, 80, 60, 0, 100_000)
    assert len(ev) and np.all(np.diff(ev.t) >= 0) and ev.t.min() >= 0 and ev.t.max() < 100_000
    assert set(np.unique(lab).tolist()) == {CORE, GLARE}
    core = ev[(ev.x == 40) & (ev.y == 30)]
    runs = 1 + np.count_nonzero(np.diff(core.p.astype(int)))  # ON and OFF alternate at 2x 100 Hz
    assert 15 <= runs <= 21
    again, lab2 = render_overlay(lamp, 80, 60, 0, 100_000)
    assert again.equals(ev) and np.array_equal(lab, lab2)  # deterministic
    steady = Lamp(40.0, 30.0, "steady", halo_px=4.0, ray_px=8.0, streak_px=10.0, ghosts=())
    assert len(render_overlay(steady, 80, 60, 0, 100_000)[0]) == 0


def test_ghosts_sit_on_the_line_through_the_centre_and_moving_lamps_travel():
    lamp = Lamp(60.0, 15.0, "pwm", 150.0, halo_px=2.0, ray_px=2.0, rays=0, streak_px=0.0, gain=30.0,
                ghosts=((-1.0, 3.0, 0.2),))
    ev, lab = render_overlay(lamp, 80, 60, 0, 50_000)
    far = ev[(np.hypot(ev.x - 60.0, ev.y - 15.0) > 15)]
    assert len(far) and np.hypot(far.x.mean() - 20.0, far.y.mean() - 45.0) < 3  # mirror of (60, 15)
    moving = Lamp(10.0, 30.0, "mains", 100.0, vx=400.0, halo_px=2.0, ray_px=2.0, rays=0, streak_px=0.0, ghosts=())
    ev, lab = render_overlay(moving, 80, 60, 0, 100_000)
    c = ev[lab == CORE]
    assert c.x[c.t < 20_000].mean() < 20 < 40 < c.x[c.t >= 80_000].mean()


def test_overlay_merges_in_time_order_and_labels_the_scene_zero():
    scene = Events.from_arrays([0, 10, 20, 30], [1, 2, 3, 4], [1, 1, 1, 1], [1, 0, 1, 0], 80, 60)
    glare = Events.from_arrays([10, 25], [9, 9], [9, 9], [1, 1], 80, 60)
    both, src = overlay(scene, glare, np.array([GLARE, CORE]))
    assert both.t.tolist() == [0, 10, 10, 20, 25, 30] and src.tolist() == [0, 0, GLARE, 0, CORE, 0]
    assert set(standard_lamps(346, 260)) >= {"mains_50hz", "mains_100hz", "pwm_150hz", "steady_moving"}


def test_flare_real_reports_bad_input_in_one_line(tmp_path, capsys):
    from eventfx_core.evaluate.flare_real import cli
    assert cli(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eventfx: error:") and "missing.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("option, bads", [("--lamp-at", ("0.5", "1.5,0.2", "a,b", "nan,0.5")),
                                           ("--starts", ("", "-0.1", "a", "0,nan"))])
def test_flare_real_refuses_a_bad_lamp_position_or_start_in_one_line(tmp_path, capsys, option, bads):
    from eventfx_core.evaluate.flare_real import cli
    for bad in bads:
        assert cli([option, bad, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"eventfx: error: {option}") and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_glare_runs_overlay_the_segment_from_its_start(monkeypatch):
    """``start_s``: the lamp switches on at the first scene event at or after the start, and the
    run covers ``seconds`` from there; every row says where its segment starts."""
    from types import SimpleNamespace
    from eventfx_core.evaluate import flare_real
    from test_deflare_gate import scene
    ev = scene(3, 4000, 1_000_000)
    ev = Events.from_arrays(ev.t + 5_000_000, ev.x, ev.y, ev.p, ev.width, ev.height)
    seen = []
    real_render = flare_real.render_overlay
    monkeypatch.setattr(flare_real, "render_overlay", lambda lamp, w, h, t0, t1, seed: (seen.append((t0, t1)) or
                                                                                        real_render(lamp, w, h, t0, t1, seed=seed)))
    monkeypatch.setattr(flare_real, "run", lambda c, b, e, chunk=20000, why=None: (np.ones(len(e), bool),
                                                                                    np.full(len(e), -1, np.int8)))
    rec = SimpleNamespace(events=ev, info=SimpleNamespace(name="s", split="tune"))
    lamps = {"mains_100hz": Lamp(60.0, 40.0, "mains", 100.0)}
    rows = flare_real.glare_runs(rec, lamps, {"x": (SimpleNamespace(stages=["stub"]), None)}, 0.2, None, start_s=0.5)
    first = int(ev.t[ev.t >= ev.t[0] + 500_000][0])  # 0.5 s after the recording's first event
    assert seen == [(first, int(ev.t[ev.t < first + 200_000][-1]) + 1)]
    assert [r["start_s"] for r in rows] == [0.5] and rows[0]["glare_removed"] == 0.0
