from adapters.huntress.fake.harness import HuntressHarness
from adapters.testing.conformance import SecurityConformance


class TestConformance(SecurityConformance):
    harness = HuntressHarness()
