"""eventfx generate: deterministic for a seed (runs, worker counts, shards), resumable,
clear errors for bad configs, unwritable folders and a full disk."""
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from eventfx_core.cli.main import main
from eventfx_core.io.archive import read_archive
from eventfx_core.simulate.sequence import GenerateConfig

TINY = dict(width=32, height=24, train_sequences=3, val_sequences=1, test_sequences=1,
            duration_ms_min=30.0, duration_ms_max=50.0, flare={"probability": 0.5})


def write_config(tmp_path: Path, **over) -> Path:
    data = {**TINY, **over}
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": data}}))
    return path


def gen(cfg_path, out, *extra) -> int:
    return main(["generate", "--config", str(cfg_path), "--out", str(out), "--quiet", *extra])


def archives(out: Path) -> dict[str, tuple]:
    res = {}
    for f in sorted(out.glob("*/*.h5")):
        a = read_archive(f)
        res[f"{f.parent.name}/{f.name}"] = (a.events, a.labels, a.meta)
    return res


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0].equals(b[k][0]) and np.array_equal(a[k][1], b[k][1]) and a[k][2] == b[k][2] for k in a)


def test_deterministic_across_runs_workers_and_shards(tmp_path):
    cfg = write_config(tmp_path)
    assert gen(cfg, tmp_path / "a", "--workers", "1") == 0
    assert gen(cfg, tmp_path / "b", "--workers", "2") == 0
    for i in range(2):
        assert gen(cfg, tmp_path / "c", "--workers", "1", "--shard", f"{i}/2") == 0
    a, b, c = archives(tmp_path / "a"), archives(tmp_path / "b"), archives(tmp_path / "c")
    assert sorted(a) == ["test/seq_00000.h5", "train/seq_00002.h5", "train/seq_00003.h5",
                         "train/seq_00004.h5", "val/seq_00001.h5"]
    assert same(a, b) and same(a, c)
    assert sum(len(v[0]) for v in a.values()) > 100
    for v in a.values():
        assert len(v[1]) == len(v[0]) and v[2]["counts"]["noise"] == int((v[1] == 1).sum())
    assert gen(cfg, tmp_path / "d", "--seed", "5") == 0
    assert not same(a, archives(tmp_path / "d"))


def test_resume_rewrites_only_unfinished(tmp_path):
    cfg = write_config(tmp_path)
    out = tmp_path / "out"
    assert gen(cfg, out, "--workers", "1") == 0
    ref = archives(out)
    files = sorted(out.glob("*/*.h5"))
    past = 1_000_000_000
    for f in files:
        os.utime(f, (past, past))
    files[0].unlink()  # never written
    files[1].write_bytes(b"half an archive")  # a crash mid-write leaves garbage...
    (files[2].parent / (files[2].name + ".partial")).write_bytes(b"x")  # ...or a .partial file
    import h5py
    with h5py.File(files[3], "r+") as f:  # an archive whose writer never closed
        f.attrs["complete"] = False
    assert gen(cfg, out, "--workers", "1") == 0
    assert same(archives(out), ref)
    assert not list(out.glob("*/*.partial"))
    assert os.stat(files[2]).st_mtime == past and os.stat(files[4]).st_mtime == past
    assert all(os.stat(f).st_mtime != past for f in files[:2] + [files[3]])


def test_growing_the_train_split_keeps_every_written_sequence(tmp_path, capsys):
    """test and val take the first indices: a larger train_sequences in the same folder adds
    train sequences and leaves the written ones (and the whole test split) untouched."""
    out = tmp_path / "out"
    assert gen(write_config(tmp_path), out) == 0
    small = archives(out)
    past = 1_000_000_000
    for f in out.glob("*/*.h5"):
        os.utime(f, (past, past))
    assert gen(write_config(tmp_path, train_sequences=5), out) == 0
    assert "2 sequences to write, 5 already finished" in capsys.readouterr().out
    big = archives(out)
    assert sorted(big) == sorted([*small, "train/seq_00005.h5", "train/seq_00006.h5"])
    assert same({k: big[k] for k in small}, small)
    assert all(os.stat(out / k).st_mtime == past for k in small)
    assert gen(write_config(tmp_path, train_sequences=5), tmp_path / "fresh") == 0
    assert same(big, archives(tmp_path / "fresh"))  # as if written at that size from the start


def test_other_config_in_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert gen(write_config(tmp_path), out) == 0
    assert gen(write_config(tmp_path, duration_ms_max=60.0), out) == 2
    assert "another config or seed" in capsys.readouterr().err


@pytest.mark.parametrize("over,msg", [
    ({"widht": 32}, "unknown key(s) widht"),
    ({"noise": {"leak_rate": 1.0}}, "unknown key(s) leak_rate"),
    ({"width": "wide"}, "expected an integer"),
    ({"flare": {"probability": 2.0}}, "probability must be in [0, 1]"),
    ({"duration_ms_min": 80.0, "duration_ms_max": 40.0}, "duration_ms_min <= duration_ms_max"),
    ({"flare": {"flare7k_path": "/nonexistent/Flare7K"}}, "/nonexistent/Flare7K: folder not found"),
])
def test_bad_configs(tmp_path, capsys, over, msg):
    assert gen(write_config(tmp_path, **over), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("eventfx: error:") and msg in err and len(err.strip().splitlines()) == 1


def test_bad_arguments(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert gen(cfg, tmp_path / "o", "--shard", "2/2") == 2
    assert gen(cfg, tmp_path / "o", "--shard", "x") == 2
    assert gen(tmp_path / "missing.yaml", tmp_path / "o") == 2
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert gen(cfg, blocker / "sub") == 2
    err = capsys.readouterr().err
    assert "need 0 <= i < N" in err and "expected i/N" in err and "cannot read config" in err
    assert "output folder is not writable" in err


def test_disk_full_keeps_finished_sequences(tmp_path, monkeypatch, capsys):
    cfg = write_config(tmp_path)
    out = tmp_path / "out"
    from eventfx_core.io import archive
    real_append = archive.ArchiveWriter.append
    calls = {"n": 0}

    def append(self, events, labels=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(self, events, labels)

    monkeypatch.setattr(archive.ArchiveWriter, "append", append)
    assert gen(cfg, out, "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "disk full; 2 finished sequences are kept" in err
    assert len(list(out.glob("*/*.h5"))) == 2 and not list(out.glob("*/*.partial"))
    monkeypatch.setattr(archive.ArchiveWriter, "append", real_append)
    assert gen(cfg, out, "--workers", "1") == 0
    assert len(list(out.glob("*/*.h5"))) == 5


def test_default_config_loads(repo_root):
    from eventfx_core.cli.generate import load_generate_config
    cfg = load_generate_config(repo_root / "training" / "generate.yaml")
    assert isinstance(cfg, GenerateConfig) and cfg.n_sequences >= 48
    assert 0 < cfg.flare.probability < 1  # sequences with and without flare
    assert load_generate_config(repo_root / "training" / "generate_test.yaml").n_sequences <= 8


def test_fit_noise_prints_a_usable_noise_section(shared_data, capsys, tmp_path):
    bag = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    assert main(["generate", "--fit-noise", str(bag)]) == 0
    out = capsys.readouterr().out
    section = yaml.safe_load(out)  # the comment line is YAML too
    from eventfx_core.config import from_dict
    from eventfx_core.simulate.noise import NoiseConfig
    nc = from_dict(NoiseConfig, section["noise"], "noise")
    assert 0.05 < nc.leak_rate_hz + nc.shot_rate_hz < 5
    assert main(["generate", "--config", str(write_config(tmp_path))]) == 2
    assert "--out is required" in capsys.readouterr().err
