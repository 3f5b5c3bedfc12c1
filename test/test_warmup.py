"""`make setup`'s warm-up (eventfx_core.warmup) leaves nothing for the node to compile at start
(issue 17 item 4): in a fresh numba cache, one process runs the warm-up, a second one does what
denoise_node does before it subscribes (every stage of the default config and its fallback,
built and run) and decodes a packet of every encoding, and loads every kernel from the cache.
How long a start takes is measured (README), not asserted here.
"""
import os
import subprocess
import sys

import pytest

NODE_START = r"""
import sys
from numba.core.registry import CPUDispatcher
from eventfx_core import warmup
from eventfx_core.pipeline_config import load_denoise_config
from eventfx_core.stream_engine import StreamEngine

cfg = load_denoise_config()
StreamEngine(cfg.pipeline, cfg.base_dir, fallback=list(cfg.node.fallback)).check()
warmup.warm_codecs()
hits, compiled = 0, []
for name, mod in list(sys.modules.items()):
    if name.startswith("eventfx_core"):
        for f in vars(mod).values():
            if isinstance(f, CPUDispatcher):
                hits += sum(f.stats.cache_hits.values())
                if sum(f.stats.cache_misses.values()):
                    compiled.append(f"{name}.{f.__name__}")
print(hits, sorted(set(compiled)))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_node_start_after_warmup_compiles_nothing(tmp_path, repo_root):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def run(args):
        proc = subprocess.run([sys.executable, *args], cwd=repo_root, env=env, capture_output=True,
                              text=True, timeout=800)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.strip().splitlines()[-1]
    assert "cached" in run(["-m", "eventfx_core.warmup"])
    hits, compiled = run(["-c", NODE_START]).split(" ", 1)
    assert compiled == "[]" and int(hits) > 0  # loaded from the cache, nothing compiled
