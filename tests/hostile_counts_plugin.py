"""Registers the codecs of tests/hostile_counts.py: a plugin (`RunSpec.plugins`) imported only inside role
processes, never in the test process."""
from benchmark.contract.registry import register_method
from tests.hostile_counts import HOSTILE, CountingRaw

for _cls in (CountingRaw, *HOSTILE.values()):
    register_method(_cls)
