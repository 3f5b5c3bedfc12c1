"""Shared fixtures: where the real recordings are, and a loopback-only DDS environment."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EVENTFX_SHARED_DATA", REPO.parent / "shared" / "data"))

# Every process that talks DDS stays on loopback (set here too, for a bare `pytest`).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings folder (../shared/data); tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (set EVENTFX_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
