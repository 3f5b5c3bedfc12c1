"""eventfx_core is plain Python/numpy/torch: importing any of its modules pulls in no rclpy
(and, on a machine without CUDA, nothing of mamba_ssm, although a stand-in of it is importable:
test/stubs is on the path, so an import would succeed and be seen)."""
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import eventfx_core

SCRIPT = r"""
import importlib, pkgutil, sys
import eventfx_core
names = [m.name for m in pkgutil.walk_packages(eventfx_core.__path__, "eventfx_core.")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosidl_runtime_py", "mamba_ssm"))
print(len(names), bad)
sys.exit(1 if bad else 0)
"""


def test_every_core_module_imports_without_ros_or_mamba_ssm():
    n_modules = len(list(pkgutil.walk_packages(eventfx_core.__path__, "eventfx_core.")))
    assert n_modules > 10
    stubs = str(Path(__file__).parent / "stubs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [stubs, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
