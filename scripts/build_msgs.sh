#!/usr/bin/env bash
# Build the ROS 2 interface packages in msg/ into the venv prefix (no colcon needed).
# Usage: scripts/build_msgs.sh VENV_DIR. Skips a package whose sources did not change.
set -euo pipefail
venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export AMENT_PREFIX_PATH="$venv"
for pkg in eventfx_msgs event_camera_msgs dvs_msgs prophesee_event_msgs; do
  src="$root/msg/$pkg"
  stamp="$venv/share/$pkg/.eventfx-build-stamp"
  sum=$(cat "$src"/CMakeLists.txt "$src"/package.xml "$src"/msg/*.msg | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then continue; fi
  echo "building interface package $pkg"
  build="$root/build/msg/$pkg"
  rm -rf "$build"; mkdir -p "$build"
  (cd "$build" && cmake "$src" -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF >cmake.log 2>&1 \
    && make -j2 install >make.log 2>&1) || { echo "build of $pkg failed; see $build/*.log" >&2; tail -30 "$build"/*.log >&2; exit 1; }
  echo "$sum" > "$stamp"
done
