"""Checkpoints of the one schema (``eventfx_core/checkpoint.py``) through the loaders of both models:
round trip, one-line ConfigErrors for everything that can go wrong, the upgrade of older formats."""
import json
import os
import pickle

import pytest
import torch

from eventfx_core.checkpoint import FORMAT, digest, main as checkpoint_main
from eventfx_core.errors import ConfigError
from eventfx_core.denoiser.features import FeatureConfig
from eventfx_core.denoiser.checkpoint import (DEFAULT_WEIGHTS, load_checkpoint, resolve_checkpoint_path,
                                             save_checkpoint, write_initial_checkpoint)
from eventfx_core.denoiser.model import DenoiserModel, ModelConfig


def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_round_trip_rebuilds_the_model(tmp_path):
    fcfg = FeatureConfig(taus_us=(2000.0, 20000.0, 200000.0))
    torch.manual_seed(0)
    model = DenoiserModel(ModelConfig(n_features=18, d_model=8, n_layers=1, headdim=4))
    with torch.no_grad():
        model.feature_mean.fill_(0.25)
    save_checkpoint(tmp_path / "m.pt", model, fcfg, {"steps": 7})
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck.model_config == model.cfg and ck.feature_config == fcfg and ck.training == {"steps": 7}
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model.state_dict()[k], v), k
    assert not ck.model.training


def test_shipped_default_weights_load():
    ck = load_checkpoint(resolve_checkpoint_path("default", None))
    assert ck.path == DEFAULT_WEIGHTS
    assert ck.model_config.class_names[0] == "signal"


def test_relative_path_resolves_against_base_dir(tmp_path):
    assert resolve_checkpoint_path("w/x.pt", tmp_path) == tmp_path / "w" / "x.pt"


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "nope.pt")
    assert "not found" in _one_line(e)
    path = write_initial_checkpoint(tmp_path / "w.pt")
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 30):
        (tmp_path / "t.pt").write_bytes(data[:cut])
        with pytest.raises(ConfigError) as e:
            load_checkpoint(tmp_path / "t.pt")
        _one_line(e)


def test_edited_checkpoint_is_refused(tmp_path):
    path = write_initial_checkpoint(tmp_path / "w.pt")
    blob = torch.load(path, weights_only=True)
    blob["tensors"]["head.bias"] = blob["tensors"]["head.bias"] + 1.0
    torch.save(blob, tmp_path / "e.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "e.pt")
    assert "checksum" in _one_line(e)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    from conftest import random_unet_checkpoint
    from eventfx_core.deflarer.checkpoint import load_checkpoint as load_deflarer

    deflarer = random_unet_checkpoint(tmp_path / "d.pt", (40, 30), seed=0)
    with pytest.raises(ConfigError) as e:
        load_checkpoint(deflarer)
    assert "'deflarer' checkpoint, expected a denoiser" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        load_deflarer(write_initial_checkpoint(tmp_path / "w.pt"))
    assert "'denoiser' checkpoint, expected a deflarer" in _one_line(e)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "plain.pt")
    _one_line(e)
    torch.save({"format": FORMAT, "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "future.pt")
    assert "version" in _one_line(e)


def test_wrong_feature_spec_is_refused(tmp_path):
    path = write_initial_checkpoint(tmp_path / "w.pt")
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    meta["feature_names"] = meta["feature_names"][::-1]  # a feature set computed differently
    blob["meta"] = json.dumps(meta, sort_keys=True)
    blob["sha256"] = digest(blob["meta"], blob["tensors"])  # re-signed: only the feature spec is wrong
    torch.save(blob, tmp_path / "f.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "f.pt")
    assert "features" in _one_line(e)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_checkpoint",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": FORMAT, "payload": _Evil()}, fh)
    torch.save({"format": FORMAT, "format_version": 1, "x": _Evil()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(ConfigError) as e:
            load_checkpoint(tmp_path / name)
        _one_line(e)
    assert not (tmp_path / "pwned_by_checkpoint").exists()


def _as_old_format(path, old_path):
    """Write the checkpoint at ``path`` in the format before the one schema (what eventfx
    wrote until 2026-11-26): denoiser "eventfx-denoiser" v1, deflarer "eventfx-deflarer" v2."""
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    if blob["kind"] == "denoiser":
        old_meta = json.dumps({"model_config": meta["model_config"], "feature_config": meta["input_config"],
                               "feature_names": meta["feature_names"], "class_names": meta["class_names"],
                               "training": meta["training"]}, sort_keys=True)
        old = {"format": "eventfx-denoiser", "format_version": 1, "meta": old_meta, "tensors": blob["tensors"],
               "sha256": digest(old_meta, blob["tensors"])}
    else:
        old = {"format": "eventfx-deflarer", "version": 2, "model": meta["model_config"],
               "voxel": meta["input_config"], "sensor": meta["sensor"], "state_dict": blob["tensors"],
               "train": {"epoch": 3, "loss": 0.5, "optimizer": {"state": {}, "param_groups": []}}}
    torch.save(old, old_path)
    return old_path


def test_old_formats_name_the_upgrade_and_upgrade_bit_for_bit(tmp_path, capsys):
    from conftest import random_unet_checkpoint
    from eventfx_core.deflarer.checkpoint import load_checkpoint as load_deflarer

    for kind, new, load in (("denoiser", write_initial_checkpoint(tmp_path / "n.pt", seed=4), load_checkpoint),
                            ("deflarer", random_unet_checkpoint(tmp_path / "d.pt", (40, 30), seed=1), load_deflarer)):
        old = _as_old_format(new, tmp_path / f"old_{kind}.pt")
        with pytest.raises(ConfigError) as e:
            load(old)
        assert f"python -m eventfx_core.checkpoint --upgrade {old} NEW.pt" in _one_line(e)
        assert checkpoint_main(["--upgrade", str(old), str(tmp_path / f"up_{kind}.pt")]) == 0
        a, b = load(new), load(tmp_path / f"up_{kind}.pt")
        for k, v in a.model.state_dict().items():
            assert torch.equal(v, b.model.state_dict()[k]), k
        # nothing is overwritten; an upgraded file is not upgraded again
        assert checkpoint_main(["--upgrade", str(old), str(tmp_path / f"up_{kind}.pt")]) == 2
        assert checkpoint_main(["--upgrade", str(new), str(tmp_path / f"again_{kind}.pt")]) == 2
        err = capsys.readouterr().err
        assert "exists" in err and "already" in err and "Traceback" not in err
    assert load_deflarer(tmp_path / "up_deflarer.pt").training["epoch"] == 3


def test_shipped_weights_are_in_the_one_schema():
    from eventfx_core.config import WEIGHTS_DIR

    for kind in ("denoiser", "deflarer"):
        blob = torch.load(WEIGHTS_DIR / f"{kind}.pt", weights_only=True)
        assert blob["format"] == FORMAT and blob["kind"] == kind and "resume" not in blob


@pytest.mark.parametrize("fmt", [["eventfx-checkpoint"], {"a": 1}, 3])
def test_a_format_tag_that_is_not_a_string_is_refused_in_one_line(fmt, tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"format": fmt}, path)
    with pytest.raises(ConfigError) as e:
        load_checkpoint(path)
    _one_line(e)
    assert checkpoint_main(["--upgrade", str(path), str(tmp_path / "new.pt")]) == 2


def test_upgrade_never_clobbers_what_the_user_has(tmp_path, capsys):
    """The output-path policy: NEW is not OLD; an existing NEW, or a NEW.partial (the temporary
    name), is left as it is with one error line and exit 2 unless --overwrite; another file
    beside it (e.g. NEW.tmp) is never touched."""
    old = _as_old_format(write_initial_checkpoint(tmp_path / "n.pt", seed=4), tmp_path / "old.pt")
    new = tmp_path / "up.pt"
    mine = {p: p.name.encode() for p in (new.with_name("up.pt.tmp"), new.with_name("up.pt.partial"))}
    for p, data in mine.items():
        p.write_bytes(data)
    capsys.readouterr()
    assert checkpoint_main(["--upgrade", str(old), str(new)]) == 2  # the .partial is someone's
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "up.pt.partial exists" in err and "Traceback" not in err
    assert not new.exists() and all(p.read_bytes() == d for p, d in mine.items())
    new.with_name("up.pt.partial").unlink()
    assert checkpoint_main(["--upgrade", str(old), str(new)]) == 0
    assert new.with_name("up.pt.tmp").read_bytes() == b"up.pt.tmp"  # untouched
    assert not new.with_name("up.pt.partial").exists()
    load_checkpoint(new)
    new.write_bytes(b"user data")
    capsys.readouterr()
    assert checkpoint_main(["--upgrade", str(old), str(new)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists already" in err and new.read_bytes() == b"user data"
    before = old.read_bytes()
    assert checkpoint_main(["--upgrade", str(old), str(old), "--overwrite"]) == 2  # never the input
    assert "is the input" in capsys.readouterr().err and old.read_bytes() == before
    new.with_name("up.pt.partial").write_bytes(b"left over")
    assert checkpoint_main(["--upgrade", str(old), str(new), "--overwrite"]) == 0
    load_checkpoint(new)
    assert not new.with_name("up.pt.partial").exists()
