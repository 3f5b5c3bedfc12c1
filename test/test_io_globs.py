"""The one glob expander (issue 12): training and deflarer configs list files by the same rule."""
import pytest

from eventfx_core.deflarer.data import expand
from eventfx_core.errors import ConfigError
from eventfx_core.io.globs import expand_globs
from eventfx_core.denoiser.data import expand_paths


@pytest.fixture
def tree(tmp_path):
    for rel in ("a/1.h5", "a/2.h5", "a/deep/3.h5", "b/4.h5"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    return tmp_path


def test_relative_recursive_sorted_and_once(tree):
    files = expand_globs(["a/*.h5", "a/**/*.h5", str(tree / "b" / "*.h5")], tree, "data.train")
    assert [f.relative_to(tree).as_posix() for f in files] == ["a/1.h5", "a/2.h5", "a/deep/3.h5", "b/4.h5"]


def test_home_is_expanded(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree))
    assert [f.name for f in expand_globs(["~/b/*.h5"], "/nowhere", "x")] == ["4.h5"]


def test_a_pattern_matching_nothing_is_named_even_beside_others(tree):
    with pytest.raises(ConfigError, match=r"data.val: 'c/\*.h5' matches no file"):
        expand_globs(["a/*.h5", "c/*.h5"], tree, "data.val")


def test_denoiser_and_deflarer_lists_follow_the_same_rule(tree):
    pats = ["a/**/*.h5"]
    assert expand_paths(pats, tree, "d") == expand(pats, tree, "d") == expand_globs(pats, tree, "d")
    for fn in (expand_paths, expand):
        with pytest.raises(ConfigError, match="'a/1.h5', 'zz'|'zz' matches no file"):
            fn(["a/1.h5", "zz"], tree, "where")
