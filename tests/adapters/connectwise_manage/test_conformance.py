"""The shared PSA conformance suite against the ConnectWise Manage fake."""

from adapters.connectwise_manage.fake.harness import ManageHarness
from adapters.testing.conformance import PsaConformance


class TestManageConformance(PsaConformance):
    harness = ManageHarness()
