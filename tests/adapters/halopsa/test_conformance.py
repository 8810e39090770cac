"""The shared PSA conformance suite against the HaloPSA fake."""

from adapters.halopsa.fake.harness import HaloHarness
from adapters.testing.conformance import PsaConformance


class TestHaloConformance(PsaConformance):
    harness = HaloHarness()
