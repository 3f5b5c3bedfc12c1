"""Start the eventfx denoise node.

    ros2 launch eventfx_ros denoise.launch.py input_topic:=/event_camera/events
    ros2 launch eventfx_ros denoise.launch.py config:=/path/to/denoise.yaml device:=cuda namespace:=cam0

Arguments left empty keep the value of the config file (default: the installed
share/eventfx_ros/config/denoise.yaml).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# Launch argument -> node parameter it overrides (only when the argument is not empty).
OVERRIDES = {
    "input_topic": "input_topic",
    "output_topic": "output_topic",
    "device": "device",
    "checkpoint": "mamba.checkpoint",
}


def _denoise_node(context):
    overrides = {}
    for arg, param in OVERRIDES.items():
        value = LaunchConfiguration(arg).perform(context)
        if value:
            overrides[param] = value
    return [Node(
        package="eventfx_ros",
        executable="denoise_node",
        name="eventfx_denoise",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("config"), overrides],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory("eventfx_ros"), "config", "denoise.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config,
                              description="denoise params file (node and pipeline keys)"),
        DeclareLaunchArgument("input_topic", default_value="",
                              description="event topic to clean (empty: the config's)"),
        DeclareLaunchArgument("output_topic", default_value="",
                              description="topic of the kept events (empty: the config's)"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="Mamba denoiser checkpoint (empty: the config's)"),
        DeclareLaunchArgument("device", default_value="",
                              description="torch device, e.g. cpu or cuda (empty: the config's)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node"),
        OpaqueFunction(function=_denoise_node),
    ])
