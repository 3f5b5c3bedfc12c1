"""Shared fixtures: where the real recordings are, a loopback-only DDS environment, and the one
factory of random event streams that tests build their inputs from (``make_events``)."""
import os
from pathlib import Path

import numpy as np
import pytest

from eventfx_core.events import Events

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EVENTFX_SHARED_DATA", REPO.parent / "shared" / "data"))
# CI services set CI=true; there the real-recording tests must run, never skip.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

# Every process that talks DDS stays on loopback (set here too, for a bare `pytest`).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def missing_shared_data(what: str) -> None:
    """A real recording is absent: skip on a user's clone, fail under ``CI=true``."""
    if IN_CI:
        pytest.fail(f"{what} not found, and CI=true: CI must run the real-recording tests "
                    f"(put the recordings at {SHARED_DATA} or set EVENTFX_SHARED_DATA)", pytrace=False)
    pytest.skip(f"{what} not found (set EVENTFX_SHARED_DATA)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings folder (../shared/data): skip when absent, fail when absent in CI."""
    if not SHARED_DATA.is_dir():
        missing_shared_data(f"real recordings at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def random_events(seed, n: int, width: int = 9, height: int = 7, *, t0: int = 0,
                  max_gap: int | None = None, span_us: int | None = None) -> Events:
    """``n`` events in time order, x, y and polarity uniform on a ``width`` x ``height`` sensor.

    Time stamps: with ``max_gap``, ``t0`` plus a running sum of gaps uniform in
    [0, max_gap) (a steady rate, repeated stamps when gaps are 0); with ``span_us``, ``n``
    stamps uniform in [t0, t0 + span_us), sorted. ``seed`` is an int or a
    ``np.random.Generator`` (used as is): the same seed gives the same events.
    """
    if (max_gap is None) == (span_us is None):
        raise ValueError("random_events: give exactly one of max_gap and span_us")
    rng = np.random.default_rng(seed)
    if max_gap is not None:
        t = t0 + np.cumsum(rng.integers(0, max_gap, n))
    else:
        t = t0 + np.sort(rng.integers(0, span_us, n))
    return Events.from_arrays(t, rng.integers(0, width, n), rng.integers(0, height, n),
                              rng.integers(0, 2, n), width, height)


@pytest.fixture(scope="session")
def make_events():
    """The shared event-stream factory, :func:`random_events`:
    ``make_events(seed, n, width, height, t0=..., max_gap=... | span_us=...)``."""
    return random_events


def random_unet_checkpoint(path: Path, sensor: tuple[int, int], seed: int, **unet) -> Path:
    """A deflarer checkpoint of a small U-Net (``channels=(4, 8, 8)`` unless ``unet`` says
    otherwise) with random, non-identity weights: what the deflare tests run the stage with
    when the trained weights do not matter but decisions must vary per event."""
    import torch

    from eventfx_core.deflarer.checkpoint import save_checkpoint
    from eventfx_core.deflarer.model import ResidualUNet3D, UNet3DConfig
    from eventfx_core.deflarer.voxel import VoxelSpec

    torch.manual_seed(seed)
    model = ResidualUNet3D(UNet3DConfig(**{"channels": (4, 8, 8), **unet}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return save_checkpoint(path, model, VoxelSpec(), sensor)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``eventfx ARGV...`` in this process: (exit status, stdout, stderr) of that call alone."""
    from eventfx_core.cli.main import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def random_raw(path: Path, seed: int, n: int, *, t0: int, max_gap: int,
               width: int = 64, height: int = 48) -> Path:
    """A Prophesee ``.raw`` (EVT3) file of :func:`random_events`, as the CLI tests read it."""
    from eventfx_core.io.prophesee_raw import write_raw

    write_raw(path, random_events(seed, n, width, height, t0=t0, max_gap=max_gap))
    return path
