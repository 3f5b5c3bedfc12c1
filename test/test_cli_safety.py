"""Issue 16, the CLI half: nothing a user has is overwritten, every output path is checked
before any work, every user error is one line (exit 2), and the CLI explains itself.

One test (or more) per row of the issue's table; each failed on the code before the fix.
"""
import shutil

import numpy as np
import pytest

from conftest import random_raw, run_cli
from eventfx_core.cli import denoise as denoise_cli
from eventfx_core.cli.main import COMMANDS, main

HOT_PIXEL_ONLY = "/**:\n  ros__parameters:\n    stages: [hot_pixel]\n"


run = run_cli  # eventfx ARGV in this process -> (status, stdout, stderr)


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("eventfx: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "hot.yaml"
    path.write_text(HOT_PIXEL_ONLY)
    return path


@pytest.fixture
def raw_input(tmp_path):
    return random_raw(tmp_path / "in.raw", 3, 20_000, t0=1_702_309_120_762_236, max_gap=50)


# --- row 1: --scores over an existing file, over the input, inside an input bag ---------------
def test_scores_never_overwrites_an_existing_file(tmp_path, raw_input, config, capsys):
    scores = tmp_path / "mine.h5"
    scores.write_bytes(b"a file the user had")
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                     "--scores", scores)
    assert rc == 2 and "exists already" in one_error_line(err) and "--overwrite" in err
    assert scores.read_bytes() == b"a file the user had"
    assert not (tmp_path / "out.h5").exists()  # refused before any work


def test_scores_pointed_at_the_input_is_refused(tmp_path, raw_input, config, capsys):
    before = raw_input.read_bytes()
    for flag in ([], ["--overwrite"]):
        rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                         "--scores", raw_input, *flag)
        assert rc == 2 and str(raw_input) in one_error_line(err)
        assert raw_input.read_bytes() == before
    assert not (tmp_path / "out.h5").exists()


def test_scores_inside_the_input_bag_is_refused(tmp_path, shared_data, config, capsys):
    bag = tmp_path / "bag"
    shutil.copytree(shared_data / "ros2_bags" / "test_data_mono_cd", bag)
    db3 = next(bag.glob("*.db3"))
    before = db3.read_bytes()
    rc, _, err = run(capsys, "denoise", "--quiet", bag, tmp_path / "out", "--config", config,
                     "--scores", db3, "--overwrite")
    assert rc == 2 and "inside the input" in one_error_line(err)
    assert db3.read_bytes() == before


def test_overwrite_replaces_an_output_only_when_asked(tmp_path, raw_input, config, capsys):
    out = tmp_path / "out.h5"
    out.write_bytes(b"old")
    assert run(capsys, "denoise", "--quiet", raw_input, out, "--config", config)[0] == 2
    assert out.read_bytes() == b"old"
    rc, stdout, _ = run(capsys, "denoise", "--quiet", raw_input, out, "--config", config, "--overwrite")
    assert rc == 0 and "20,000 events in" in stdout and out.read_bytes()[:4] == b"\x89HDF"


# --- row 2: Ctrl-C during denoise --scores -----------------------------------------------------
def test_ctrl_c_leaves_no_scores_file_under_its_final_name(tmp_path, raw_input, config, capsys, monkeypatch):
    calls = []
    real_append = denoise_cli.ScoreWriter.append

    def append_then_interrupt(self, *a):
        real_append(self, *a)
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(denoise_cli.ScoreWriter, "append", append_then_interrupt)
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                     "--scores", tmp_path / "scores.h5")
    assert calls and rc == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hot.yaml", "in.raw"]  # no output, no .partial


# --- row 3: missing parent folders; a folder that cannot be made -------------------------------
@pytest.mark.parametrize("name", ["events.h5", "events.raw", "events.bag", "bagdir"])
def test_every_writer_creates_missing_parent_folders(tmp_path, raw_input, name, capsys):
    out = tmp_path / "new" / "deeper" / name
    rc, stdout, err = run(capsys, "convert", "-q", raw_input, out)
    assert rc == 0, err
    assert out.exists() and "20,000 events" in stdout


@pytest.mark.parametrize("name", ["events.h5", "events.raw", "events.bag"])
def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, raw_input, name, capsys):
    (tmp_path / "afile").write_bytes(b"x")
    rc, _, err = run(capsys, "convert", "-q", raw_input, tmp_path / "afile" / "sub" / name)
    assert rc == 2 and "is a file, not a folder" in one_error_line(err)
    assert (tmp_path / "afile").read_bytes() == b"x"


# --- row 4: --preview with the wrong name or into a bad folder: refused before the run ---------
def test_preview_with_a_wrong_name_is_refused_before_any_work(tmp_path, raw_input, config, capsys):
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                     "--preview", tmp_path / "out.bag")
    assert rc == 2 and ".png" in one_error_line(err)
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.bag").exists()


def test_preview_into_an_unusable_folder_is_refused_before_any_work(tmp_path, raw_input, config, capsys):
    (tmp_path / "afile").write_bytes(b"x")
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                     "--preview", tmp_path / "afile" / "p.png")
    assert rc == 2 and "--preview" in one_error_line(err)
    assert not (tmp_path / "out.h5").exists()


def test_preview_is_written_whole(tmp_path, raw_input, config, capsys):
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "out.h5", "--config", config,
                     "--preview", tmp_path / "pics" / "p.png")
    assert rc == 0, err
    assert (tmp_path / "pics" / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.rglob("*.partial*"))


# --- row 5: bench --duration-ms -1 -----------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--duration-ms", "--message-us"])
def test_bench_with_a_negative_length_is_one_line(flag, capsys):
    rc, _, err = run(capsys, "bench", flag, "-1", "--no-dv")
    assert rc == 2 and flag in one_error_line(err)


# --- row 10: eventfx --help, --version, one spelling per option, --format split ------------------
def test_help_lists_every_command_with_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in COMMANDS:
        row = [ln for ln in lines if ln.strip().startswith(name + " ")]
        assert len(row) == 1 and len(row[0].split(None, 1)[1]) > 10, name  # name and summary, one line
        assert len(row[0]) <= 80
        nxt = lines[lines.index(row[0]) + 1]
        assert not nxt.strip() or nxt.split()[0] in COMMANDS, f"{name}'s line wraps"
    assert "(see eventfx" not in out


def test_version(capsys):
    from eventfx_core import __version__
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"eventfx {__version__}"


@pytest.mark.parametrize("command", ["info", "convert", "denoise", "generate", "train", "evaluate", "realbench"])
def test_each_command_spells_quiet_one_way_and_help_has_no_rst(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "-q, --quiet" in out and "--no-progress" not in out
    assert "``" not in out


@pytest.mark.parametrize("command", ["info", "convert", "denoise"])
def test_old_format_option_says_which_new_one(command, tmp_path, capsys):
    argv = [command, "x"] + (["y"] if command != "info" else []) + ["--format", "dsec"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--format was replaced" in err
    assert ("--input-format" if command == "info" else "--output-format") in err


def test_input_and_output_format_say_which(tmp_path, raw_input, capsys):
    rc, _, err = run(capsys, "convert", "-q", raw_input, tmp_path / "x.data", "--output-format", "dsec",
                     "--input-format", "raw")
    assert rc == 0, err
    rc, out, _ = run(capsys, "info", "-q", tmp_path / "x.data", "--input-format", "dsec")
    assert rc == 0 and "format:      dsec" in out


# --- row 11: --set typos, an empty config, a garbage checkpoint ---------------------------------
def test_set_typo_blames_set(tmp_path, raw_input, capsys):
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "o.h5", "--set", "baf.time_windw_us=3")
    line = one_error_line(err)
    assert rc == 2 and line.startswith("eventfx: error: --set baf.time_windw_us=3:") and "time_windw_us" in line
    assert "denoise.yaml" not in line


def test_empty_config_warns_that_everything_is_kept(tmp_path, raw_input, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    rc, out, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "o.h5", "--config", empty)
    assert rc == 0 and "(100.0 %)" in out
    assert "eventfx: warning:" in err and "no stages" in err


def test_garbage_checkpoint_is_one_whole_line(tmp_path, raw_input, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(1000))
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, tmp_path / "o.h5", "--set", "stages=[mamba]",
                     "--set", f"mamba.checkpoint={garbage}")
    line = one_error_line(err)
    assert rc == 2 and str(garbage) in line and "not a checkpoint" in line and line.endswith(")")
    assert not (tmp_path / "o.h5").exists()


def test_train_never_replaces_a_checkpoint_without_overwrite(tmp_path, capsys):
    ck = tmp_path / "weights" / "mine.pt"
    ck.parent.mkdir()
    ck.write_bytes(b"weights the user trained")
    cfg = tmp_path / "t.yaml"
    cfg.write_text("kind: deflarer\noutput: weights/mine.pt\n")
    rc, _, err = run(capsys, "train", "-q", "--config", cfg)
    assert rc == 2 and "--overwrite" in one_error_line(err) and "--resume" in err
    assert ck.read_bytes() == b"weights the user trained"


def test_evaluate_never_replaces_a_report_without_overwrite(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("the report the user kept")
    data = tmp_path / "no_such_dataset"  # checked before any work: the data is never read
    rc, _, err = run(capsys, "evaluate", "--data", data, "--out", out, "--no-noise-bag", "-q")
    line = one_error_line(err)
    assert rc == 2 and "report.md" in line and "--overwrite" in line
    assert (out / "report.md").read_text() == "the report the user kept"
    # with --overwrite the check passes and the run goes on (to the missing dataset)
    rc, _, err = run(capsys, "evaluate", "--data", data, "--out", out, "--no-noise-bag", "-q", "--overwrite")
    assert rc == 2 and "exists already" not in err and str(data) in one_error_line(err)


@pytest.mark.parametrize("argv", [
    ["--deflare", "--windows", "0"], ["--deflare", "--rate", "nan"], ["--deflare", "--sensor", "abc"],
    ["--deflare", "--sensor", "0x480"], ["--deflare", "--threads", "0"],
    ["--convert-memory", "--size-gb", "nan"], ["--convert-memory", "--size-gb", "0"],
    ["--convert-memory", "--msg-kb", "0"]])
def test_bench_deflare_and_convert_memory_bad_numbers_are_one_line(argv, tmp_path, capsys):
    rc, _, err = run(capsys, "bench", *argv, "--dir", tmp_path / "scratch")
    assert rc == 2 and argv[1] in one_error_line(err)
    assert not (tmp_path / "scratch").exists()  # checked before any work


def test_a_partial_output_left_by_an_interrupted_run_is_kept_unless_overwrite(tmp_path, raw_input, config,
                                                                                capsys):
    """A leftover OUT.partial (eventfx's temporary name) may hold the only copy of a long run's
    output: every writer refuses it like OUT itself (io.output_paths.check_output), and replaces it
    only with --overwrite."""
    out = tmp_path / "out.h5"
    left = tmp_path / "out.h5.partial"
    left.write_bytes(b"half of a long run")
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, out, "--config", config)
    assert rc == 2 and "out.h5.partial exists" in one_error_line(err) and "--overwrite" in err
    assert left.read_bytes() == b"half of a long run" and not out.exists()
    rc, _, err = run(capsys, "denoise", "--quiet", raw_input, out, "--config", config, "--overwrite")
    assert rc == 0, err
    assert out.exists() and not left.exists()
