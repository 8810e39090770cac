"""Console agents matched to RMM endpoints: N endpoints × N agents across clients of 100 devices,
the way a console sync matches a tenant.

    .venv/bin/python -m benchmarks.device_matching [--devices 100000] [--rounds 3]

The data mixes what real fleets send: most devices on both sides with serial, MACs and name; some
agents without a serial (matched by MAC), some with only a name (matched by hostname), 3 % of the
endpoints without an agent and as many agents unknown to the RMM. Each round builds the inputs
fresh and times `match_devices` alone;
"peak memory" is the highest resident set size of this process (inputs included), so it is an
upper bound of what the matching costs a sync.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time

from adapters.testing.harness import device_mac, device_serial
from connector.fleet.matching import Device, match_devices

CLIENT_SIZE = 100


def build(devices: int, seed: int) -> tuple[list[Device], list[Device]]:
    """`devices` endpoints and `devices` agents: 3 % of the endpoints have no agent, and as many
    agents (numbered past the endpoints) are unknown to the RMM."""
    rng = random.Random(seed)
    endpoints: list[Device] = []
    agents: list[Device] = []
    n = 0
    while len(agents) < devices:
        scope = f"company-{n // CLIENT_SIZE}"
        host = f"HOST-{n:07d}"
        if n < devices:
            endpoints.append(Device(f"e{n}", scope, host, device_serial(host), (device_mac(host),)))
            if rng.random() < 0.03:
                n += 1
                continue
        kind = rng.random()
        if kind < 0.80:
            agents.append(Device(f"a{n}", scope, host, device_serial(host), (device_mac(host),)))
        elif kind < 0.95:
            agents.append(Device(f"a{n}", scope, host.lower(), None, (device_mac(host),)))
        else:
            agents.append(Device(f"a{n}", scope, host.lower()))
        n += 1
    return endpoints, agents


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before = peak_rss_mb()
    seconds: list[float] = []
    matched = 0
    for round_ in range(args.rounds):
        endpoints, agents = build(args.devices, seed=round_)
        started = time.perf_counter()
        result = match_devices(endpoints, agents)
        seconds.append(time.perf_counter() - started)
        matched = sum(1 for m in result.values() if m.endpoint is not None)
        print(
            f"round {round_ + 1}: {len(endpoints):,} endpoints × {len(agents):,} agents matched in "
            f"{seconds[-1]:.2f} s ({matched:,} matched, "
            f"{sum(1 for m in result.values() if m.note):,} reported)"
        )
        del endpoints, agents, result
    print(
        f"match_devices: median {statistics.median(seconds):.2f} s "
        f"(range {min(seconds):.2f}–{max(seconds):.2f} s over {len(seconds)} rounds); "
        f"peak memory {peak_rss_mb():.0f} MB resident (interpreter and imports: {before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
