"""The shared RMM conformance suite against the ConnectWise Automate fake."""

from adapters.connectwise_automate.fake.harness import AutomateHarness
from adapters.testing.conformance import RmmConformance


class TestAutomateConformance(RmmConformance):
    harness = AutomateHarness()
