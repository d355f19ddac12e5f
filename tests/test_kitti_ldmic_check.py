"""`bench datasets check kitti` reports the ``kitti/ldmic`` split beside the NDIC one on tiny generated KITTI layouts:
the counts the dataset reads (test = frames _10/_11 of every testing/ scene, one sample per pair; train and val =
those of training/, val the scenes ending in 9, each pair in both orders), the published counts, and what is missing."""
from __future__ import annotations

import pytest

from benchmark.contract.registry import get_dataset, get_protocol
from fixtures_real import make_kitti_tree
from test_ldmic_protocols import _stereo_release

LDMIC = "kitti/ldmic"
NDIC = "kitti-stereo/ndic"
TINY = (8, 16)  # H, W: the check and the split listing never decode an image


def _reports(root, protocol):
    return {r.split: r for r in get_dataset("kitti").check(root) if r.protocol == protocol}


def _dataset_sizes(root):
    info, proto = get_dataset("kitti"), get_protocol(LDMIC)
    return {s: len(info.factory(root, proto, s, **proto.options)) for s in ("train", "val", "test")}


def test_the_check_counts_what_the_ldmic_split_reads_on_the_multi_view_releases(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=11, scenes_2015=2, size=TINY)
    checks = get_dataset("kitti").check(root)
    assert [(r.protocol, r.split) for r in checks] == [(NDIC, "train"), (NDIC, "val"), (NDIC, "test"),
                                                       (LDMIC, "train"), (LDMIC, "val"), (LDMIC, "test")]
    ldmic = _reports(root, LDMIC)
    assert {s: r.found for s, r in ldmic.items()} == _dataset_sizes(root) == {"train": 48, "val": 4, "test": 26}
    # the authors' split: 395 test pairs x 2 frames, 788 training pairs of which the 78 of scenes ending in 9 validate
    assert {s: r.expected for s, r in ldmic.items()} == {"train": (788 - 78) * 2, "val": 78 * 2, "test": 790}
    test = ldmic["test"]
    assert not test.ok and test.n_missing == ((195 - 11) + (200 - 2)) * 2 * 2  # scenes x frames x views
    assert test.missing[0] == "data_stereo_flow_multiview/testing/image_2/000011_10.png"
    assert "data_stereo_flow_multiview/ (image_2, image_3)" in test.note and "one sample per pair" in test.note
    assert ldmic["val"].missing[0] == "data_stereo_flow_multiview/training/image_2/000019_10.png"  # scene 19
    assert ldmic["val"].n_missing == ((19 - 1) + (20 - 0)) * 2 * 2  # the scenes ending in 9 not present
    # the NDIC split is reported as before
    assert {s: r.found for s, r in _reports(root, NDIC).items()} == {"train": 52, "val": 26, "test": 26}


def test_an_unpaired_view_is_missing_and_not_counted(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=1, scenes_2015=1, size=TINY)
    (root / "data_scene_flow_multiview" / "testing" / "image_3" / "000000_11.png").unlink()
    test = _reports(root, LDMIC)["test"]
    assert test.found == 3  # 4 pairs, one without its right view
    assert test.n_missing == ((195 - 1) + (200 - 1)) * 2 * 2 + 1  # absent scenes' files, and the lost view


def test_the_stereo_releases_alone_are_checked_and_the_missing_ones_named(tmp_path):
    """Only KITTI 2012's stereo release (data_stereo_flow/, colored_0/1), as the authors read it: the check does not
    stop at the absent multi-view releases; kitti/ldmic's counts are those of data_stereo_flow/, KITTI 2015 is named
    as missing (data_scene_flow/, where the dataset would read it), and every NDIC file is missing."""
    root = tmp_path / "kitti"
    _stereo_release(root, "data_stereo_flow", "colored_0", "colored_1", {"training": 10, "testing": 2}, size=TINY)
    ldmic = _reports(root, LDMIC)
    assert {s: r.found for s, r in ldmic.items()} == {"train": 2 * 2 * 9, "val": 2 * 2, "test": 4}
    with pytest.warns(UserWarning, match="both"):
        assert _dataset_sizes(root) == {"train": 36, "val": 4, "test": 4}
    assert ldmic["test"].missing[0] == "data_stereo_flow/testing/colored_0/000002_10.png"
    assert "data_scene_flow/ (image_2, image_3)" in ldmic["test"].note
    assert ldmic["test"].n_missing == ((195 - 2) + 200) * 2 * 2
    ndic = _reports(root, NDIC)
    assert all(r.found == 0 and not r.ok for r in ndic.values())
    assert ndic["test"].missing[0] == "data_stereo_flow_multiview/testing/image_2/000000_10.png"


def test_a_release_twice_is_reported_not_raised(tmp_path):
    root = tmp_path / "kitti"
    _stereo_release(root, "data_stereo_flow", "colored_0", "colored_1", {"testing": 1}, size=TINY)
    _stereo_release(root, "stereo2012", "colored_0", "colored_1", {"testing": 1}, size=TINY)
    make_kitti_tree(root, scenes_2012=1, scenes_2015=1, size=TINY)
    ldmic = _reports(root, LDMIC)
    assert all(not r.ok and r.found == 0 and "same release twice" in r.note for r in ldmic.values())
    assert ldmic["test"].expected == 790
    assert _reports(root, NDIC)["test"].found == 4  # the multi-view releases still count for NDIC


def test_one_release_under_the_root_has_no_published_count(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", scenes_2015=10, size=TINY, single=True)
    ldmic = _reports(root, LDMIC)
    assert {s: (r.found, r.expected, r.n_missing) for s, r in ldmic.items()} == {
        "train": (36, None, 0), "val": (4, None, 0), "test": (20, None, 0)}
    assert "the root (image_2, image_3)" in ldmic["test"].note and "2012 and 2015" in ldmic["test"].note


def test_the_command_reports_each_protocol_and_filters_by_one(tmp_path, cli_runner):
    from cli.main import app

    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=1, scenes_2015=1, size=TINY)
    res = cli_runner.invoke(app, ["datasets", "check", "kitti", "--root", str(root)])
    assert res.exit_code == 1, res.output
    assert "kitti/ldmic" in res.output and "kitti-stereo/ndic" in res.output
    assert "incomplete for kitti-stereo/ndic, kitti/ldmic" in " ".join(res.output.split())
    only = cli_runner.invoke(app, ["datasets", "check", "kitti", "--root", str(root), "--protocol", LDMIC])
    assert only.exit_code == 1 and "kitti-stereo/ndic" not in only.output and "kitti/ldmic" in only.output
    single = make_kitti_tree(tmp_path / "single", scenes_2015=2, size=TINY, single=True)
    ok = cli_runner.invoke(app, ["datasets", "check", "kitti", "--root", str(single), "--protocol", LDMIC])
    assert ok.exit_code == 0 and "complete" in ok.output, ok.output
    bad = cli_runner.invoke(app, ["datasets", "check", "kitti", "--root", str(root), "--protocol", "kitti/nope"])
    assert bad.exit_code != 0 and "kitti/ldmic" in bad.output
