"""``eventfx convert`` and ``eventfx info`` end to end (in-process through cli.main)."""
import numpy as np

from eventfx_core.cli.main import main
from eventfx_core.io import open_source


def test_convert_bag_to_dsec_to_bag_and_info(tmp_path, shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_data_evt3_trigger"
    assert main(["convert", "-q", str(bag), str(tmp_path / "events.h5")]) == 0
    assert main(["convert", "-q", str(tmp_path / "events.h5"), str(tmp_path / "out"),
                 "--to-type", "dvs_msgs/msg/EventArray", "--packet-us", "2000"]) == 0
    src = open_source(tmp_path / "out")
    n = sum(len(p.events) for p in src)
    assert src.msgtype == "dvs_msgs/msg/EventArray" and n == 82469
    capsys.readouterr()
    assert main(["info", "-q", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "82,469" in out and "1280 x 720" in out and "/event_camera/events" in out and "1 ms" in out


def test_convert_errors_are_one_line_and_leave_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(np.random.default_rng(1).bytes(3000))
    assert main(["convert", "-q", str(bad), str(tmp_path / "o.bag")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eventfx: error:") and "bad.h5" in err[0]
    assert not list(tmp_path.glob("o.bag*"))


def test_convert_refuses_to_overwrite(tmp_path, shared_data, capsys):
    (tmp_path / "exists.h5").write_bytes(b"keep me")
    rc = main(["convert", "-q", str(shared_data / "ros2_bags" / "test_data_mono_cd"), str(tmp_path / "exists.h5")])
    assert rc == 2 and (tmp_path / "exists.h5").read_bytes() == b"keep me"
    assert "exists" in capsys.readouterr().err
