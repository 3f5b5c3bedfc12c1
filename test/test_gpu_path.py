"""The GPU path without a GPU, and with one when present.

Here (no CUDA): the adapter around mamba_ssm's ``mamba_chunk_scan_combined`` against a stand-in
module on ``sys.path`` that computes what the kernel documents (test/stubs), exact on the CPU;
the device rules (``auto``, an error for a CUDA device that cannot run); the checkpoint's model
copied, not patched; and the CPU path never importing mamba_ssm even when it is importable.
With CUDA and mamba_ssm: GPU vs CPU agreement of the keep decisions (>= 99.9 % of events;
Triton computes in TF32, so not to 1e-4), for the denoiser and the deflarer's U-Net. And
``scripts/gpu_check.py`` (the check run on a GPU) as a dry run on the CPU.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eventfx_core.errors import ConfigError
from eventfx_core.device import resolve_device
from eventfx_core.denoiser.gpu_runner import TorchDenoiser, mamba_ssm_scan, mamba_ssm_scan_error
from eventfx_core.denoiser.model import DenoiserModel, Mamba2Mixer, ModelConfig

STUBS = Path(__file__).parent / "stubs"
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture
def stub_mamba_ssm(monkeypatch):
    """The stand-in mamba_ssm importable for one test; forgotten afterwards."""
    monkeypatch.syspath_prepend(str(STUBS))
    for name in [m for m in sys.modules if m.split(".")[0] == "mamba_ssm"]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.split(".")[0] == "mamba_ssm"]:
        del sys.modules[name]


def _model(seed=0, ngroups=1, dtype=torch.float32):
    torch.manual_seed(seed)
    m = DenoiserModel(ModelConfig(n_features=5, n_layers=2, ngroups=ngroups, chunk_len=8)).to(dtype).eval()
    with torch.no_grad():
        m.feature_mean.uniform_(-0.5, 0.5)
        m.feature_std.uniform_(0.5, 2.0)
    return m


@pytest.mark.parametrize("ngroups", [1, 2])
def test_adapter_equals_the_torch_scan_with_the_documented_kernel(stub_mamba_ssm, ngroups):
    from mamba_ssm.ops.triton import ssd_combined

    g = torch.Generator().manual_seed(ngroups)
    b, length, h, p, n = 2, 37, 4, 3, 5
    x = torch.randn(b, length, h, p, generator=g, dtype=torch.float64)
    dt = torch.rand(b, length, h, generator=g, dtype=torch.float64) * 2 + 1e-3  # long gaps included
    A = -torch.rand(h, generator=g, dtype=torch.float64) * 4 - 0.1
    B = torch.randn(b, length, ngroups, n, generator=g, dtype=torch.float64)
    C = torch.randn(b, length, ngroups, n, generator=g, dtype=torch.float64)
    s0 = torch.randn(b, h, p, n, generator=g, dtype=torch.float64)
    y_ref, s_ref = Mamba2Mixer.scan(x, dt, A, B, C, 8, s0)  # the CPU's chunked torch scan
    calls = len(ssd_combined.CALLS)
    y, s = mamba_ssm_scan(x, dt, A, B, C, 8, s0)
    assert len(ssd_combined.CALLS) == calls + 1  # the stand-in really ran
    assert torch.allclose(y, y_ref, atol=1e-10) and torch.allclose(s, s_ref, atol=1e-10)


def test_torch_runner_with_the_kernel_matches_the_model_and_leaves_it_alone(stub_mamba_ssm):
    assert mamba_ssm_scan_error() is None
    m = _model(seed=1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    f = torch.randn(300, 5, generator=g)
    dt = torch.randint(0, 3000, (300,), generator=g).float()
    runner = TorchDenoiser(m, "cpu", scan=mamba_ssm_scan)
    got = np.concatenate([runner.probabilities(f[:120].numpy(), dt[:120].numpy()),
                          runner.probabilities(f[120:].numpy(), dt[120:].numpy())])
    with torch.no_grad():
        logits, _ = m(f[None], dt[None])
    assert np.abs(got - torch.softmax(logits[0], -1).numpy()).max() < 1e-5
    # the checkpoint's model is copied: not the runner's object, no scan patched into it
    assert runner.model is not m
    assert all("scan" not in blk.mixer.__dict__ for blk in m.layers)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_device_rules_without_cuda(tmp_path):
    from eventfx_core.denoiser.stage import MambaDenoiserStage

    assert resolve_device("auto", "x").type == "cpu"
    assert resolve_device("", "x").type == "cpu"
    with pytest.raises(ConfigError, match="cuda asked for, but torch"):
        resolve_device("cuda", "mamba.device")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda"):
        resolve_device("gpu", "mamba.device")
    with pytest.raises(ConfigError, match="mamba.device: cuda:1 asked for"):  # at construction, not on a message
        MambaDenoiserStage(MambaDenoiserStage.Config(device="cuda:1"), sensor=(32, 32))
    stage = MambaDenoiserStage(MambaDenoiserStage.Config(device="auto"), sensor=(32, 32))
    assert stage.device.type == "cpu"


def test_mamba_ssm_missing_is_reported():
    import importlib.util

    if importlib.util.find_spec("mamba_ssm") is not None:
        pytest.skip("mamba_ssm is installed here")
    reason = mamba_ssm_scan_error()
    assert reason is not None and "mamba-ssm==" in reason and "ModuleNotFoundError" in reason


def test_cpu_never_imports_mamba_ssm_even_when_importable():
    """The stand-in is on the path (importing it would succeed and leave it in sys.modules):
    a CPU run of the stage, with device cpu and auto, and of the torch model must not import it."""
    code = (
        "import sys, numpy as np\n"
        "import mamba_ssm.ops.triton  # noqa: the stand-in is importable\n"
        "for m in [m for m in sys.modules if m.startswith('mamba_ssm')]: del sys.modules[m]\n"
        "from eventfx_core.stages import stage_class\n"
        "from eventfx_core.events import Events\n"
        "S = stage_class('mamba')\n"
        "ev = Events.from_arrays(np.arange(50) * 10, np.arange(50) % 32, np.arange(50) % 7, np.arange(50) % 2, 32, 32)\n"
        "for device in ('cpu', 'auto'):\n"
        "    S(S.Config(device=device), sensor=(32, 32)).process(ev)\n"
        "import eventfx_core.denoiser.gpu_runner, eventfx_core.denoiser.model as m, torch\n"
        "mm = m.DenoiserModel(m.ModelConfig()); mm(torch.zeros(1, 5, 16), torch.zeros(1, 5))\n"
        "eventfx_core.denoiser.gpu_runner.TorchDenoiser(mm, 'cpu').probabilities(np.zeros((3, 16), np.float32), np.ones(3, np.float32))\n"
        "assert 'mamba_ssm' not in sys.modules, 'mamba_ssm imported'\n"
        "print('ok')\n")
    path = os.pathsep.join(filter(None, [str(STUBS), os.environ.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


needs_gpu = pytest.mark.skipif(not HAS_CUDA or mamba_ssm_scan_error() is not None,
                               reason="needs CUDA and mamba_ssm (the gpu extra)")


def _stream():
    from eventfx_core.bench.stages import cut_messages, synthetic_stream

    return cut_messages(synthetic_stream(seed=3, duration_us=100_000), 1000)


@needs_gpu
def test_gpu_and_cpu_denoiser_agree_on_keep_decisions():
    from eventfx_core.denoiser.stage import MambaDenoiserStage

    msgs = _stream()
    keep = {}
    for device in ("cpu", "cuda"):
        stage = MambaDenoiserStage(MambaDenoiserStage.Config(device=device), sensor=msgs[0].sensor_size)
        keep[device] = np.concatenate([stage.process(m).keep for m in msgs])
    agree = float(np.mean(keep["cpu"] == keep["cuda"]))
    assert agree >= 0.999, agree


@needs_gpu
def test_gpu_and_cpu_unet_agree_on_keep_decisions():
    from eventfx_core.deflarer.stage import DeflareStage

    msgs = _stream()
    keep = {}
    for device in ("cpu", "cuda"):
        cfg = DeflareStage.Config(device=device, allow_other_sensor=True, gate=False)
        stage = DeflareStage(cfg, sensor=msgs[0].sensor_size)
        assert stage.device.type == device
        out = [stage.push(m) for m in msgs] + [stage.flush()]
        keep[device] = np.concatenate(out)
    assert len(keep["cpu"]) == len(keep["cuda"]) and np.mean(keep["cpu"] == keep["cuda"]) >= 0.999


def test_gpu_check_script_dry_run_on_cpu(tmp_path, shared_data):
    """scripts/gpu_check.py with --device cpu on a real bag: its cut comparisons hold exactly
    on the CPU path (1 ms messages and one message decide as the bag's own messages)."""
    import json

    bag = shared_data / "ros2_bags" / "test_data_evt3_trigger"
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--out", str(tmp_path), str(bag)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (rec,) = json.loads((tmp_path / "gpu_check.json").read_text())["recordings"]
    assert rec["events"] == 82_469 and set(rec["configs"]) == {"pipeline", "mamba"}
    for row in rec["configs"].values():
        assert row["kept_cpu"] == row["kept_cuda"] > 0
        assert row["cuda_equals_cpu"] == row["cuda_1ms_equals_cuda"] == row["cuda_one_message_equals_cuda"] == 1.0
