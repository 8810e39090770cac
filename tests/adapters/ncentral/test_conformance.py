"""The shared RMM conformance suite against the N-central fake."""

from adapters.ncentral.fake.harness import NcentralHarness
from adapters.testing.conformance import RmmConformance


class TestNcentralConformance(RmmConformance):
    harness = NcentralHarness()
