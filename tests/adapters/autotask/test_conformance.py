"""The shared PSA conformance suite against the Autotask fake."""

from adapters.autotask.fake.harness import AutotaskHarness
from adapters.testing.conformance import PsaConformance


class TestAutotaskConformance(PsaConformance):
    harness = AutotaskHarness()
