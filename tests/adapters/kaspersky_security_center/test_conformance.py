from adapters.kaspersky_security_center.fake.harness import KscHarness
from adapters.testing.conformance import SecurityConformance


class TestConformance(SecurityConformance):
    harness = KscHarness()
