#!/usr/bin/env bash
# Rebuild data/demo/emlb_demo_evt3 from the E-MLB demo clip with eventfx's own tools:
# convert the AEDAT4 file to EventPacket/evt3 messages of 1 ms, then keep the first 400 ms
# (the whole 0.51 s clip is 2.1 MB as sqlite3; the bundled bag stays under 2 MB).
set -euo pipefail
src=${1:-../shared/data/aedat4/emlb_demo-01_davis346.aedat4}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/eventfx convert "$src" "$tmp/full" --to-type event_camera_msgs/msg/EventPacket \
  --to-encoding evt3 --packet-us 1000 -q
rm -rf "$here/emlb_demo_evt3"
.venv/bin/python - "$tmp/full" "$here/emlb_demo_evt3" <<'PY'
import sys
from pathlib import Path

from rosbags.rosbag2 import Writer

from eventfx_core.codecs.typestore import ros2_typestore
from eventfx_ros.replay import read_bag

topic, msgtype, msgs = read_bag(Path(sys.argv[1]), None)
with Writer(Path(sys.argv[2]), version=8) as writer:
    conn = writer.add_connection(topic, msgtype, typestore=ros2_typestore())
    for ts, raw in msgs[:400]:  # the first 400 messages of 1 ms
        writer.write(conn, ts, raw)
PY
