"""Start the eventfx denoise node: one node, or one node per camera.

    ros2 launch eventfx_ros denoise.launch.py                       # events -> events_clean
    ros2 launch eventfx_ros denoise.launch.py cameras:=cam0,cam1    # /cam0/events -> /cam0/events_clean, ...
    ros2 launch eventfx_ros denoise.launch.py config:=/path/to/denoise.yaml device:=auto namespace:=cam0

The node's topics are relative (``events`` in, ``events_clean`` out), so each camera's node
lives in its camera's namespace. Arguments left empty keep the value of the config file
(default: the installed share/eventfx_ros/config/denoise.yaml); a config file that does not
exist is an error here, not a node running on its defaults. ``node_specs`` holds the argument
handling and imports nothing of launch (tested without launch_ros).
"""
import os

# Launch argument -> node parameter it overrides (only when the argument is not empty).
OVERRIDES = {
    "input_topic": "input_topic",
    "output_topic": "output_topic",
    "device": "device",
    "checkpoint": "mamba.checkpoint",
}
ARGUMENTS = {
    "config": "denoise params file (node and pipeline keys)",
    "input_topic": "event topic to clean (empty: the config's, relative: events)",
    "output_topic": "topic of the kept events (empty: the config's, relative: events_clean)",
    "checkpoint": "Mamba denoiser checkpoint (empty: the config's)",
    "device": "torch device: auto, cpu or cuda (empty: the config's)",
    "namespace": "namespace of the node (one camera)",
    "cameras": "comma-separated camera namespaces: one node in each (overrides namespace)",
}


def node_specs(values: dict) -> list:
    """The nodes to start for the launch arguments ``values`` (name -> string): a list of
    ``{"name", "namespace", "parameters": [config path, overrides]}``. Raises ``ValueError``
    with one line for a config file that does not exist or a bad camera list."""
    config = values.get("config", "")
    if not os.path.isfile(config):
        raise ValueError(f"config:={config}: no such file")
    overrides = {param: values[arg] for arg, param in OVERRIDES.items() if values.get(arg)}
    cameras = [c.strip().strip("/") for c in values.get("cameras", "").split(",") if c.strip()]
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras:={values['cameras']}: a camera is listed twice")
    namespaces = cameras or [values.get("namespace", "")]
    return [{"name": "eventfx_denoise", "namespace": ns, "parameters": [config, dict(overrides)]}
            for ns in namespaces]


def _nodes(context):
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    return [Node(package="eventfx_ros", executable="denoise_node", name=spec["name"],
                 namespace=spec["namespace"], parameters=spec["parameters"], output="screen",
                 emulate_tty=True) for spec in node_specs(values)]


def generate_launch_description():
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    default_config = os.path.join(get_package_share_directory("eventfx_ros"), "config", "denoise.yaml")
    defaults = {"config": default_config}
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=defaults.get(name, ""), description=text)
          for name, text in ARGUMENTS.items()],
        OpaqueFunction(function=_nodes),
    ])
