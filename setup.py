"""eventfx: real-time event-camera denoising and deflaring for ROS 2 (ament_python package).

The Python distribution carries two packages: ``eventfx_core`` (numpy/torch, no ROS) and
``eventfx_ros`` (the thin rclpy adapter). Launch files and configs go to share/eventfx_ros,
the node executable to lib/eventfx_ros (where ``ros2 run``/``ros2 launch`` look for it).
"""
from glob import glob

from setuptools import find_packages, setup

package_name = "eventfx_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["eventfx_core", "eventfx_core.*", "eventfx_ros", "eventfx_ros.*"]),
    package_data={"eventfx_core": ["weights/*.pt", "weights/*.json", "weights/*.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=[
        "numpy>=1.26",
        "numba>=0.60",
        "torch>=2.1",
        "h5py>=3.10",
        "hdf5plugin>=4.4",
        "rosbags>=0.10",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "aedat>=2.0",
    ],
    extras_require={
        "gpu": ["mamba-ssm==2.2.4"],  # CUDA only, over a CUDA torch: README "On a GPU"
        "dv": ["dv-processing>=2.0"],
        "test": ["pytest>=8", "hypothesis>=6.100", "pytest-timeout>=2.3", "faery>=0.7"],
    },
    zip_safe=True,
    maintainer="eventfx developers",
    maintainer_email="eventfx@example.org",
    description="Real-time event-camera denoising and deflaring for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "eventfx = eventfx_core.cli.main:main",
            "denoise_node = eventfx_ros.denoise_node:main",
        ],
    },
)
