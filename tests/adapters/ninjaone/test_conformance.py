from adapters.ninjaone.fake.harness import NinjaOneHarness
from adapters.testing.conformance import RmmConformance


class TestNinjaOneConformance(RmmConformance):
    harness = NinjaOneHarness()
