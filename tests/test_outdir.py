import pytest

from tfperf.errors import TfperfError
from tfperf.run.outdir import choose_out_dir, update_latest


def test_default_is_a_new_timestamped_folder_and_latest_follows(tmp_path):
    root = tmp_path / "reports"
    first = choose_out_dir("smoke", None, False, root=root)
    first.mkdir(parents=True)
    second = choose_out_dir("smoke", None, False, root=root)
    assert first != second and first.parent == second.parent == root / "smoke"
    second.mkdir(parents=True)
    update_latest(first, root=root)
    update_latest(second, root=root)
    assert (root / "smoke" / "latest").resolve() == second.resolve()


def test_non_empty_out_is_refused_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(TfperfError, match="not empty"):
        choose_out_dir("smoke", out, False)
    assert choose_out_dir("smoke", out, True) == out


def test_out_is_not_created_by_choosing(tmp_path):
    out = tmp_path / "fresh"
    choose_out_dir("smoke", out, False)
    assert not out.exists()
