"""launch/denoise.launch.py: its argument handling (``node_specs``, no launch needed) always;
the description itself with the standard launch API where it is installed.

launch/launch_ros are not installable from PyPI here; on a ROS 2 install (or with them on
PYTHONPATH) the file must build its description and declare the documented arguments.
"""
import importlib.util

import pytest


def _load(repo_root):
    spec = importlib.util.spec_from_file_location("denoise_launch", repo_root / "launch" / "denoise.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_file_declares_the_arguments(repo_root, monkeypatch, tmp_path):
    for name in ("launch", "launch_ros", "ament_index_python"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not importable (not on PyPI; needs a ROS 2 install)")
    try:
        import launch_ros.actions  # noqa: F401  (imports composition_interfaces)
    except ImportError as exc:
        pytest.skip(f"launch_ros does not import here: {exc}")
    # A prefix with the package's ament index marker and config, as `make setup` installs it.
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "eventfx_ros").touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    desc = _load(repo_root).generate_launch_description()
    args = {a.name: a for a in desc.entities if isinstance(a, DeclareLaunchArgument)}
    assert set(args) == {"config", "input_topic", "output_topic", "checkpoint", "device", "namespace",
                         "cameras"}
    assert args["config"].default_value[0].text.endswith("share/eventfx_ros/config/denoise.yaml")
    assert any(isinstance(a, OpaqueFunction) for a in desc.entities)


def test_launch_overrides_map_to_node_parameters(repo_root):
    """Every launch argument overrides a parameter that the config really has."""
    import dataclasses

    from eventfx_core.pipeline_config import NODE_KEYS
    from eventfx_core.stages import stage_class

    for param in _load(repo_root).OVERRIDES.values():
        stage, _, field = param.partition(".")
        if field:
            assert field in {f.name for f in dataclasses.fields(stage_class(stage).Config)}, param
        else:
            assert param in NODE_KEYS or param in ("stages", "device"), param


def test_one_node_per_camera_in_its_namespace(repo_root):
    specs = _load(repo_root).node_specs
    config = str(repo_root / "config" / "denoise.yaml")
    nodes = specs({"config": config, "cameras": "cam0, /cam1", "device": "auto", "namespace": "x"})
    assert [n["namespace"] for n in nodes] == ["cam0", "cam1"]
    assert all(n["parameters"] == [config, {"device": "auto"}] for n in nodes)
    (one,) = specs({"config": config, "namespace": "cam7", "checkpoint": "/w/d.pt"})
    assert one["namespace"] == "cam7" and one["parameters"][1] == {"mamba.checkpoint": "/w/d.pt"}
    with pytest.raises(ValueError, match="listed twice"):
        specs({"config": config, "cameras": "cam0,cam0"})


def test_a_missing_config_is_an_error_not_the_defaults(repo_root, tmp_path):
    with pytest.raises(ValueError, match="missing.yaml: no such file"):
        _load(repo_root).node_specs({"config": str(tmp_path / "missing.yaml")})
