#!/usr/bin/env bash
# Compile the numba kernels into their on-disk cache (python -m eventfx_core.warmup), so a fresh
# install's node starts on cached kernels. Usage: scripts/warm_caches.sh VENV_DIR.
# Skipped while no source file changed: numba keys its cache on each file's time stamp, and so
# does the stamp here (set EVENTFX_WARM_STAMP to keep it elsewhere).
set -euo pipefail
venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
stamp=${EVENTFX_WARM_STAMP:-$venv/.eventfx-warm.sha}
sum=$(cd "$root" && find eventfx_core -name '*.py' -printf '%p %T@ %s\n' | sort | sha256sum | cut -d' ' -f1)
sum="$sum ${NUMBA_CACHE_DIR:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then exit 0; fi
(cd "$root" && "$venv/bin/python" -m eventfx_core.warmup)
echo "$sum" > "$stamp"
