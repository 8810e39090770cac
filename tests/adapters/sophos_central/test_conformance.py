from adapters.sophos_central.fake.harness import SophosCentralHarness
from adapters.testing.conformance import SecurityConformance


class TestConformance(SecurityConformance):
    harness = SophosCentralHarness()
