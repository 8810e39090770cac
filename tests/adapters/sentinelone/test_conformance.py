from adapters.sentinelone.fake.harness import SentinelOneHarness
from adapters.testing.conformance import SecurityConformance


class TestConformance(SecurityConformance):
    harness = SentinelOneHarness()
