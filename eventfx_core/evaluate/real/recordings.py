"""The real event recordings of the benchmark, and which split each belongs to.

``tune``: parameters and default thresholds may be chosen on these (and a model may train on
them with injected noise); ``report``: never tuned or trained on, the figures the README cites.
A recording's own sensor noise counts as real signal here, for every method alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import EventfxError
from ...events import Events

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("EVENTFX_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class RecordingInfo:
    name: str  # short name used in tables
    path: str  # relative to the shared data folder, or "repo:" + path inside the repository
    sensor: str  # camera and resolution
    licence: str  # source and licence
    split: str  # "tune" or "report"
    note: str = ""  # what to know when reading its row


# The E-MLB clip and its bundled 0.40 s evt3 copy are one scene: both are in the report split.
RECORDINGS: tuple[RecordingInfo, ...] = (
    RecordingInfo("libcaer_cmp", "ros2_bags/test_events_2_libcaer_cmp", "DAVIS346, 346x260",
                  "ros-event-camera/event_camera_py, Apache-2.0", "tune"),
    RecordingInfo("evt3_trigger", "ros2_bags/test_data_evt3_trigger", "Prophesee, 1280x720",
                  "ros-event-camera/event_camera_codecs, Apache-2.0", "tune",
                  "mostly sensor noise: its own events are sparse"),
    RecordingInfo("emlb_demo", "aedat4/emlb_demo-01_davis346.aedat4", "DAVIS346, 346x260",
                  "KugaMaxx/cuke-emlb, MIT", "report"),
    RecordingInfo("evl_sample", "aedat4/evl_sample_davis346.aedat4", "DAVIS346, 346x260",
                  "shiba24/event-vision-library, MIT", "report", "tiny: 6,676 events"),
    RecordingInfo("emlb_demo_evt3", "repo:data/demo/emlb_demo_evt3", "DAVIS346, 346x260",
                  "KugaMaxx/cuke-emlb, MIT (eventfx's evt3 copy)", "report",
                  "the first 0.40 s of emlb_demo, read from the bundled evt3 bag"),
)
# A real recording of (almost) pure sensor noise: the source of the resampled noise model.
NOISE_RECORDING = "ros2_bags/test_data_libcaer_rollover"


@dataclass
class Recording:
    info: RecordingInfo
    events: Events = field(repr=False)

    @property
    def duration_s(self) -> float:
        return self.events.duration_us * 1e-6

    def describe(self) -> dict:
        ev = self.events
        return dict(name=self.info.name, path=self.info.path, sensor=self.info.sensor,
                    licence=self.info.licence, split=self.info.split, note=self.info.note,
                    width=ev.width, height=ev.height, events=len(ev), duration_s=round(self.duration_s, 3),
                    rate_mev_s=round(len(ev) / max(self.duration_s, 1e-9) / 1e6, 3))


def resolve(path: str, data: Path | None = None) -> Path:
    if path.startswith("repo:"):
        return REPO / path[len("repo:"):]
    return Path(data or SHARED_DATA) / path


def read_events(path: Path, max_s: float | None = None) -> Events:
    """All events of one recording (at most its first ``max_s`` seconds), read by the io layer
    (which also opens bags with incomplete metadata, as event_camera_py's test bag has)."""
    from ...simulate.fit import read_events as read_all
    ev = read_all(path)
    if max_s is not None and len(ev):
        ev = ev[: int((ev.t < ev.t[0] + int(max_s * 1e6)).sum())]
    return ev


def real_recordings(data: Path | None = None, split: str | None = None, names=None,
                    max_s: float | None = None) -> list[Recording]:
    """The real recordings as ``Recording`` (info + ``Events``), optionally one split or some
    names only. Raises ``EventfxError`` if a requested recording is missing."""
    out = []
    for info in RECORDINGS:
        if (split and info.split != split) or (names and info.name not in names):
            continue
        path = resolve(info.path, data)
        if not path.exists():
            raise EventfxError(f"real recording {info.name}: {path} not found")
        out.append(Recording(info, read_events(path, max_s)))
    if names:
        unknown = set(names) - {r.info.name for r in out}
        if unknown:
            raise EventfxError(f"unknown recording(s) {sorted(unknown)}; known: "
                               f"{', '.join(i.name for i in RECORDINGS)}")
    return out
