"""The shared RMM conformance suite against the N-sight fake."""

from adapters.nsight.fake.harness import NsightHarness
from adapters.testing.conformance import RmmConformance


class TestNsightConformance(RmmConformance):
    harness = NsightHarness()
