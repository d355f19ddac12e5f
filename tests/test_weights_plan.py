"""Saved weights are reused only when they were trained as the codec would train them now: asking for other
steps (or any other training option) in the same --out trains instead of silently loading the old weights."""
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from tests.test_learning_curve import OPTS, PROTO, kitti_like  # noqa: F401 - the fixture


def test_other_steps_never_load_the_saved_weights(kitti_like, tmp_path):  # noqa: F811
    spec = dict(method="balle2018", dataset="stereo", protocol=PROTO, root=kitti_like, out=tmp_path, budget="quick",
                progress=False)
    run(RunSpec(**spec, method_options={**OPTS, "steps": 2}))
    _, again = run(RunSpec(**spec, method_options={**OPTS, "steps": 2}))
    assert again["training"].get("loaded_from")  # same settings: the weights are reused
    _, more = run(RunSpec(**spec, method_options={**OPTS, "steps": 3}))
    assert more["training"].get("loaded_from") is None and more["training"]["steps"] == 3
    assert all(p["resumed_at"] == [2] for p in more["training"]["points"].values())  # extendable: continued
