"""Two `bench run`s of the same method, variant and seed into one results folder would train side by side in
`train/<key>` and overwrite each other's checkpoints, partial CSV and weights; the second one is refused, while
other methods in the same folder go on (a sweep runs several methods into one `results/seed-<k>`)."""
import pytest

from benchmark.errors import OutputError
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec, protocol_dir
from benchmark.safety.atomicio import exclusive_run, output_dir

PROTOCOL = "middlebury-sample/stereo"


def _spec(out, method="jpeg", isolation="none"):
    return RunSpec(method=method, dataset="middlebury_sample", budget="smoke", progress=False, limit=1,
                   isolation=isolation, out=out)


def test_a_second_run_of_the_same_key_is_refused_and_others_go_on(tmp_path):
    out = tmp_path / "results"
    pdir = output_dir(protocol_dir(out, PROTOCOL))
    with exclusive_run(pdir, "jpeg"):  # a run of jpeg is (as far as the lock says) in progress
        with pytest.raises(OutputError, match=r"another `bench run` of 'jpeg' is writing into .*choose another --out"):
            run(_spec(out))
        assert not (pdir / "jpeg.json").exists()
        path, _ = run(_spec(out, method="webp"))  # another method into the same folder is not held up
        assert path == pdir / "webp.json" and path.exists()
    path, result = run(_spec(out))  # the lock goes with the run that held it
    assert path == pdir / "jpeg.json" and result["points"]


def test_the_sandboxed_path_takes_the_same_lock(tmp_path):
    out = tmp_path / "results"
    pdir = output_dir(protocol_dir(out, PROTOCOL))
    with exclusive_run(pdir, "jpeg"):
        with pytest.raises(OutputError, match="another `bench run` of 'jpeg'"):
            run(_spec(out, isolation="process"))
    assert not list(pdir.glob("jpeg*.json"))


def test_a_lock_held_by_a_dead_process_is_no_lock(tmp_path):
    """flock dies with its process: a run killed mid-training never blocks the resumed one."""
    import subprocess
    import sys

    pdir = output_dir(tmp_path / "p")
    code = ("import sys; from pathlib import Path; from benchmark.safety.atomicio import exclusive_run\n"
            "with exclusive_run(Path(sys.argv[1]), 'k'):\n    sys.exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(pdir)], check=True)
    assert (pdir / ".k.run.lock").exists()
    with exclusive_run(pdir, "k"):  # taken at once
        pass


def test_the_lock_is_never_taken_through_a_link(tmp_path):
    pdir = output_dir(tmp_path / "p")
    (tmp_path / "elsewhere").write_text("")
    (pdir / ".k.run.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError):
        with exclusive_run(pdir, "k"):
            pass
