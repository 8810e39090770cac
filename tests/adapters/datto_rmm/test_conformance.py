from adapters.datto_rmm.fake.harness import DattoHarness
from adapters.testing.conformance import RmmConformance


class TestDattoRmmConformance(RmmConformance):
    harness = DattoHarness()
