"""Denoiser checkpoints: round trip, and one-line ConfigErrors for everything that can go wrong."""
import json
import os
import pickle

import pytest
import torch

from eventfx_core.errors import ConfigError
from eventfx_core.denoiser.features import FeatureConfig
from eventfx_core.denoiser.checkpoint import (DEFAULT_WEIGHTS, FORMAT, load_checkpoint, read_blob,
                                           resolve_checkpoint_path, save_checkpoint,
                                           write_initial_checkpoint)
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
    torch.save({"format": "eventfx-deflarer", "format_version": 1, "tensors": {}}, tmp_path / "d.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "d.pt")
    assert "eventfx-deflarer" in _one_line(e)
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
    # re-sign so that only the feature spec is wrong
    from eventfx_core.denoiser.checkpoint import _digest
    blob["sha256"] = _digest(blob["meta"], blob["tensors"])
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
            read_blob(tmp_path / name, FORMAT)
        _one_line(e)
    assert not (tmp_path / "pwned_by_checkpoint").exists()
