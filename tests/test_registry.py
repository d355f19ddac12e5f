from pathlib import Path

import pytest

import benchmark.contract.registry as reg
from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.errors import RegistryError


def test_suite_imports_its_own_top_level_packages():
    import baselines
    import datasets
    import leaderboard
    import methods

    repo = Path(reg.__file__).resolve().parents[2]
    for mod in (datasets, baselines, methods, leaderboard):
        assert Path(mod.__file__).resolve().parent.parent == repo, f"{mod.__name__} is shadowed by {mod.__file__}"


def test_builtin_names_registered():
    names = reg.METHODS.names()
    for n in ("jpeg", "webp", "avif", "jpeg2000"):
        assert n in names
    assert "middlebury_sample" in reg.DATASETS.names()
    assert "middlebury-sample/stereo" in reg.PROTOCOLS.names()
    assert reg.METHODS.names("jpeg*") == sorted(n for n in names if n.startswith("jpeg"))


def test_duplicate_name_rejected():
    class Dup(Codec):
        meta = MethodMeta("jpeg", Scenario.SEPARATE)

        def rate_points(self):
            return []

        def compress(self, x, *, side=None, source=0, point):
            return b""

        def decompress(self, data, *, side=None, source=0):
            return None

    with pytest.raises(RegistryError, match="duplicate"):
        reg.register_method(Dup)


def test_did_you_mean():
    with pytest.raises(RegistryError, match="Did you mean 'jpeg'"):
        reg.get_method("jpg")
    with pytest.raises(RegistryError, match="middlebury_sample"):
        reg.get_dataset("midlebury_sample")


def test_entry_point_plugin(monkeypatch, tmp_path):
    """A third-party package registers a method through the `bench.methods` entry-point group."""
    plugin = tmp_path / "myplugin.py"
    plugin.write_text(
        "from benchmark.contract.codec import Codec, MethodMeta, Scenario\n"
        "class Plug(Codec):\n"
        "    meta = MethodMeta('plugin_codec_for_test', Scenario.SEPARATE)\n"
        "    def rate_points(self): return ['p']\n"
        "    def compress(self, x, *, side=None, source=0, point): return b''\n"
        "    def decompress(self, data, *, side=None, source=0): return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from importlib import metadata

    ep = metadata.EntryPoint(name="plug", value="myplugin:Plug", group="bench.methods")
    real = metadata.entry_points
    monkeypatch.setattr(reg.metadata, "entry_points", lambda group=None: [ep] if group == "bench.methods" else real(group=group))
    monkeypatch.setattr(reg, "_discovered", set())
    try:
        assert "plugin_codec_for_test" in reg.METHODS.names()
        assert reg.get_method("plugin_codec_for_test").__name__ == "Plug"
    finally:
        reg.METHODS.remove("plugin_codec_for_test")
