"""One budget table shape for every method (benchmark/contract/budgets.py): {budget name: MethodBudget}, read through
`Codec.budget_table(protocol)` by `bench list methods -v`, the runner and these tests."""
import pytest
from typer.testing import CliRunner

from benchmark.contract.budgets import (BUDGETS, MODEL_STAGE, MethodBudget, TrainConfig, checked_table, method_budget,
                               resolve_budget)
from cli.main import app
from benchmark.contract.codec import LearnedCodec
from benchmark.errors import ConfigError
from benchmark.contract.options import BUDGET_NAMES
from benchmark.contract.registry import METHODS, PROTOCOLS, get_method, get_protocol
from benchmark.evaluation.setup import check_method_budget

METHOD_NAMES = METHODS.names()
# budgets may differ per protocol (NDIC's epoch, Neural DSC's tables): every registered protocol and the default
PROTOCOL_NAMES = (None, *PROTOCOLS.names())


def _check_shape(table, where: str) -> None:
    assert isinstance(table, dict) and tuple(table) == BUDGET_NAMES, where
    for name, entry in table.items():
        assert isinstance(entry, MethodBudget), f"{where} {name}"
        assert entry.stages and all(isinstance(s, str) and isinstance(tc, TrainConfig) for s, tc in entry.train.items())
        assert set(entry.epochs) <= set(entry.stages) and all(isinstance(e, int) and e >= 1 for e in entry.epochs.values())
        assert all(isinstance(k, str) for k in entry.model), f"{where} {name}"
        assert entry.describe().startswith(entry.stages[0] + ":")
        assert entry.as_dict()["train"].keys() == entry.train.keys()
    assert checked_table(table, where) == table  # the core's own check agrees


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_has_the_one_budget_table_shape(name):
    cls = get_method(name)
    if not issubclass(cls, LearnedCodec):
        assert cls.budget_table() is None  # not trained: no budgets
        return
    for protocol in PROTOCOL_NAMES:
        table = cls.budget_table(protocol)
        _check_shape(table, f"{name} under {protocol}")
        for budget in BUDGET_NAMES:
            assert method_budget(table, budget, name) is table[budget]
        with pytest.raises(ConfigError, match=f"{name}: unknown budget 'huge'; choose one of smoke, quick, paper"):
            method_budget(table, "huge", name)


def test_budgets_stay_the_same_numbers():
    """A few entries by value (the move to one shape changed no number)."""
    balle = get_method("balle2018").budget_table()
    assert balle["quick"].stage().steps == 500 and balle["quick"].model["warm_start"] is True
    assert (balle["smoke"].model["N"], balle["smoke"].model["M"]) == (32, 48)
    ndic = get_method("ndic_balle2018").budget_table("cityscapes/ndic")
    assert ndic["smoke"] is balle["smoke"] and ndic["paper"].stage().val_every == 2975
    drasic = get_method("drasic").budget_table()
    assert drasic["paper"].epochs == {MODEL_STAGE: 200} and drasic["quick"].epochs == {}
    nd = get_method("neural_dsc").budget_table("celeba-hq/neural-dsc")
    assert nd["paper"].stages == ("vq", "prior") and nd["paper"].epochs == {"vq": 20, "prior": 100}
    assert nd["smoke"].stage("vq").steps == 40 and nd["smoke"].model["bits"] == (2, 4)
    assert get_method("layered_wz").budget_table()["paper"].stage().steps == 36_000


def test_method_budget_checks_shape_and_names():
    tc = TrainConfig(steps=1)
    with pytest.raises(ConfigError, match="maps stage names to TrainConfig"):
        MethodBudget({"model": {"steps": 1}})
    with pytest.raises(ConfigError, match="must be stages of train"):
        MethodBudget({"model": tc}, epochs={"prior": 3})
    with pytest.raises(ConfigError, match="exactly the budgets smoke, quick, paper"):
        checked_table({"smoke": MethodBudget({"model": tc})}, "m")
    with pytest.raises(ConfigError, match="must be MethodBudget"):
        checked_table({"smoke": MethodBudget({"model": tc}), "quick": tc, "paper": tc}, "m")
    with pytest.raises(ConfigError, match="no training stage 'prior'"):
        MethodBudget({"model": tc}).stage("prior")
    with pytest.raises(ConfigError, match="has no training budgets"):
        method_budget(None, "smoke", "jpeg")
    partial = {"smoke": MethodBudget({"model": tc})}  # a plugin's incomplete table: its own names are offered
    with pytest.raises(ConfigError, match="unknown budget 'quick'; choose one of smoke"):
        method_budget(partial, "quick", "plugin")


def test_resolve_budget_reads_a_stage_with_overrides():
    assert resolve_budget("quick") == BUDGETS["quick"].stage()
    nd = get_method("neural_dsc").budget_table()
    assert resolve_budget("smoke", nd, stage="prior", lr=None, steps=3) == nd["smoke"].stage("prior").replace(steps=3)


def test_runner_checks_the_method_budget_before_work():
    codec = get_method("jpeg")()
    check_method_budget(codec, get_protocol("middlebury-sample/stereo"), "anything")  # classical: no budgets
    learned = get_method("balle2018")(N=8, M=8)
    check_method_budget(learned, get_protocol("middlebury-sample/stereo"), "paper")
    with pytest.raises(ConfigError, match="balle2018: unknown budget 'fast'"):
        check_method_budget(learned, get_protocol("middlebury-sample/stereo"), "fast")


def test_list_methods_verbose_shows_each_budget():
    out = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["list", "methods", "-v", "-p", "neural_dsc_joint"]).output
    for budget in BUDGET_NAMES:
        assert f"--budget {budget}" in out
    assert "vq: 40 steps" in out and "prior: 30 steps" in out
