#!/usr/bin/env bash
# Put the ROS 2 package files where `ros2 launch`/`ros2 run` look for them in the venv prefix:
# the ament index marker, package.xml, launch files and configs in share/eventfx_ros, and the
# node executable in lib/eventfx_ros. (An editable pip install does not install data_files;
# colcon users get the same layout from setup.py.) Idempotent and quick.
set -euo pipefail
venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
share="$venv/share/eventfx_ros"
mkdir -p "$venv/share/ament_index/resource_index/packages" "$share/launch" "$share/config" "$venv/lib/eventfx_ros"
cp -f "$root/resource/eventfx_ros" "$venv/share/ament_index/resource_index/packages/eventfx_ros"
cp -f "$root/package.xml" "$share/"
cp -f "$root"/launch/*.launch.py "$share/launch/" 2>/dev/null || true
cp -f "$root"/config/*.yaml "$root"/config/*.xml "$share/config/" 2>/dev/null || true
for exe in denoise_node; do
  if [ -x "$venv/bin/$exe" ]; then ln -sf "$venv/bin/$exe" "$venv/lib/eventfx_ros/$exe"; fi
done
