"""What an adapter author needs to test an adapter: the fault toolkit the stateful vendor fakes are
built from (`faults`), the harness protocols a fake implements so suites can drive it (`harness`),
and the inherited conformance suites (`conformance`, which needs pytest).

Nothing here is imported by the service itself; `AdapterSpec.harness` names a harness by import path
so `connector serve` never loads a fake.
"""
