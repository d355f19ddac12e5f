"""The typed options layer (benchmark/contract/options.py): every registered method declares its options once, and a
bad option (unknown name, or a value of the wrong type) fails before any work with one clear message."""
import json
import re
import typing
import warnings

import pytest
from typer.testing import CliRunner

from benchmark.evaluation import runner as bench_runner
from cli.main import _parse_kv, app
from benchmark.errors import ConfigError
from benchmark.contract.options import BUDGET_NAMES, Option, check_options
from benchmark.contract.registry import DATASETS, METHODS, get_method

cli = CliRunner(env={"COLUMNS": "250"})
METHOD_NAMES = METHODS.names()


def _typed_option(cls) -> Option:
    """A declared option whose type a word like 'abc' is not (int, float, bool or a list of numbers)."""
    for opt in cls.options_spec:
        inner = typing.get_args(opt.type)[0] if typing.get_origin(opt.type) else opt.type
        if inner in (int, float, bool):
            return opt
    raise AssertionError(f"{cls.meta.name} declares no numeric or boolean option")


def _no_work(monkeypatch):
    """Any dataset read or training fails the test."""
    def forbidden(*a, **k):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(bench_runner, "build_split", forbidden)
    monkeypatch.setattr(bench_runner, "ensure_trained", forbidden)


def _spec_for(name: str, options: dict, tmp_path) -> bench_runner.RunSpec:
    cls = get_method(name)
    proto = getattr(cls, "test_protocol", "middlebury-sample/stereo")
    dataset = next(n for n, d in DATASETS.items() if proto in d.protocols)
    return bench_runner.RunSpec(method=name, dataset=dataset, protocol=proto, out=tmp_path / "out", budget="smoke",
                                method_options=options)


def _names_the_valid_options(msg: str, cls) -> None:
    assert "Valid options:" in msg
    for opt in cls.options_spec:
        assert f"{opt.name} ({opt.type_name})" in msg


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_declares_its_options(name):
    cls = get_method(name)
    assert cls.options_spec is not None, f"{name}: declare options_spec (benchmark/contract/options.py)"
    names = [o.name for o in cls.options_spec]
    assert len(names) == len(set(names)), f"{name}: an option declared twice"
    for opt in cls.options_spec:
        assert opt.help, f"{name}: option {opt.name} has no help text"
        if opt.default is not None:  # the declared default is a value of the declared type
            assert opt.parse(opt.default) is not None
    # the contract test's small options pass the declaration unchanged in meaning
    test_options = getattr(cls, "test_options", None) or {}
    cls.check_options(dict(test_options))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_unknown_option_fails_before_any_work(name, tmp_path, monkeypatch):
    cls = get_method(name)
    bad = cls.options_spec[0].name + "x"  # a typo of a real name: "did you mean" it
    with pytest.raises(ConfigError) as direct:
        cls(**{bad: 1})
    msg = str(direct.value)
    assert f"unknown option {bad!r}" in msg and f"Did you mean {cls.options_spec[0].name!r}" in msg
    _names_the_valid_options(msg, cls)
    _no_work(monkeypatch)
    with pytest.raises(ConfigError, match=f"unknown option {bad!r}"):
        bench_runner.run(_spec_for(name, {bad: 1}, tmp_path))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_wrongly_typed_option_fails_before_any_work(name, tmp_path, monkeypatch):
    cls = get_method(name)
    opt = _typed_option(cls)
    with pytest.raises(ConfigError) as direct:
        cls(**{opt.name: "abc"})
    msg = str(direct.value)
    assert f"option {opt.name} expects {opt.type_name}" in msg and "'abc'" in msg
    _names_the_valid_options(msg, cls)
    _no_work(monkeypatch)
    with pytest.raises(ConfigError, match=re.escape(f"option {opt.name} expects {opt.type_name}")):
        bench_runner.run(_spec_for(name, {opt.name: "abc"}, tmp_path))
    assert not (tmp_path / "out").exists()


def test_cli_refuses_bad_options_before_any_work(tmp_path, monkeypatch):
    _no_work(monkeypatch)
    out = tmp_path / "out"
    r = cli.invoke(app, ["run", "--method", "balle2018", "--option", "N=abc", "--out", str(out), "-q"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert "balle2018: option N expects int, >= 1, got 'abc'" in text and "Valid options: lambdas (list[float]), N (int)" in text
    r = cli.invoke(app, ["run", "--method", "balle2018", "--option", "lamdas=0.01", "--out", str(out), "-q"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "unknown option 'lamdas'. Did you mean 'lambdas'?" in text, r.output
    r = cli.invoke(app, ["train", "--method", "drasic", "--dataset", "mnist", "--option", "iterations=1.5", "--out", str(out)])
    assert r.exit_code == 2 and "option iterations expects int" in " ".join(r.output.split()), r.output
    assert not out.exists()


def test_cli_choices_are_typed_and_shown(tmp_path):
    help_text = cli.invoke(app, ["run", "--help"]).output
    for choice in ("smoke|quick|paper", "cpu|cuda|mps", "left|right|both"):
        assert choice in help_text.replace(" ", "").replace("│", "").replace("\n", ""), choice
    r = cli.invoke(app, ["run", "--method", "jpeg", "--budget", "fast", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "fast" in r.output


def test_list_methods_verbose_shows_each_declared_option():
    r = cli.invoke(app, ["list", "methods", "-v"])
    assert r.exit_code == 0, r.output
    for name in METHOD_NAMES:
        assert name in r.output
    assert "--option lambdas" in r.output and "list[float], > 0" in r.output
    assert "str, one of mse|ms-ssim" in r.output and "default \"mse\"" in r.output
    assert "str, one of distributed|separate|joint" in r.output  # drasic's config


def test_lists_keep_working_from_the_command_line_and_the_api():
    for raw in (_parse_kv(["lambdas=[0.013,0.0035]"], "--option")["lambdas"], "0.0035,0.013", "[0.0035, 0.013]",
                (0.013, 0.0035)):
        codec = get_method("balle2018")(lambdas=raw)
        assert codec.lambdas == (0.0035, 0.013)
        assert codec.rate_points() == ["lambda=0.0035", "lambda=0.013"]
    with pytest.raises(ConfigError, match="duplicate values"):
        get_method("balle2018")(lambdas="0.01,0.01")
    with pytest.raises(ConfigError, match="must be > 0"):
        get_method("balle2018")(lambdas="[0.01,-1]")


def test_typed_values_are_what_the_result_records():
    codec = get_method("balle2018")(N="16", M=24, lambdas="0.0035", hflip="yes", steps=2.0)
    assert codec.options["N"] == 16 and codec.options["hflip"] is True and codec.options["steps"] == 2
    recorded = json.loads(json.dumps(codec.info()))["options"]
    assert recorded["N"] == 16 and recorded["lambdas"] == [0.0035] and recorded["hflip"] is True


def test_check_options_casts_each_type():
    spec = (Option("n", int, help="h"), Option("x", float, help="h"), Option("b", bool, help="h"),
            Option("s", str, help="h", choices=("a", "b")), Option("l", list[int], help="h", minimum=1))
    got = check_options("m", spec, {"n": "3", "x": "0.5", "b": "off", "s": "a", "l": "1,2"})
    assert got == {"n": 3, "x": 0.5, "b": False, "s": "a", "l": (1, 2)}
    for bad in ({"n": "1.5"}, {"n": True}, {"x": "nan"}, {"b": "maybe"}, {"s": "c"}, {"l": "0,1"}, {"l": "[]"}):
        with pytest.raises(ConfigError, match=re.escape(f"option {next(iter(bad))} expects")):
            check_options("m", spec, bad)


def test_one_list_of_budget_names():
    from benchmark.contract import budgets

    assert BUDGET_NAMES == ("smoke", "quick", "paper")
    assert tuple(budgets.BUDGETS) == BUDGET_NAMES  # the generic budget table has exactly the named budgets


def test_minnen2018_is_an_alias_of_mbt2018_mean_that_warns(capsys):
    with pytest.warns(DeprecationWarning, match="'minnen2018' is deprecated: use 'mbt2018_mean'"):
        cls = get_method("minnen2018")
    assert cls is get_method("mbt2018_mean") and cls.meta.name == "mbt2018_mean"
    assert "minnen2018" not in METHODS.names()  # listed once, under its own name
    assert capsys.readouterr().err.count("\n") == 1  # and one line for a user who does not see warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_method("mbt2018_mean")  # the new name does not warn


def test_a_sweep_refuses_bad_options_before_submitting(tmp_path):
    from benchmark.cluster.sweep import expand

    with pytest.raises(ConfigError, match=re.escape("balle2018: option N expects int")):
        expand(["balle2018"], ["middlebury_sample"], None, [0], budget="smoke", method_options={"N": "abc"})
    jobs = expand(["balle2018"], ["middlebury_sample"], None, [0], budget="smoke", method_options={"N": 16})
    assert [j.method_options for j in jobs] == [{"N": 16}] * 3  # one job per λ (smoke trains them independently)
