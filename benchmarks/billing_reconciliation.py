"""Three-way reconciliation of one period: C clients × 3 products × N devices, each client an RMM
client and a console customer mapped to one PSA company.

    .venv/bin/python -m benchmarks.billing_reconciliation [--clients 2000] [--devices 100000] [--rounds 3]

Every client has 30 days of RMM usage and console seats for each product; 2 % of the devices have no
product, 3 % of the console agents match no RMM device, 5 % of the clients are unmapped, and the
recorded PSA lines are missing for 2 %, different for 10 % and left over from 1 % retired clients.
Each round builds the inputs fresh and times `reconcile` alone; "peak memory" is the highest
resident set size of this process (inputs included), so it is an upper bound of what reconciling
costs a request.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from benchmarks.device_matching import peak_rss_mb
from connector.billing.domain import MappingKey, UsageRow
from connector.billing.reconciliation import AgentFact, EndpointFact, Recorded, Row, reconcile

PRODUCTS = ("Acme EDR", "Backup Pro", "Mail Shield")
DAYS = 30


@dataclass(frozen=True)
class Rule:
    product: str
    id: str
    count_scope: str = "installed"
    count_method: str = "peak"
    psa_connection_id: str = "psa"
    unit_price: Decimal = Decimal("4.50")
    cost_tiers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    psa_company_id: str
    psa_company_name: str | None


@dataclass
class World:
    rules: list[Rule]
    usage: list[UsageRow]
    licences: list[UsageRow]
    mappings: dict[MappingKey, Mapping]
    recorded: dict[tuple[str, str], Recorded]
    endpoints: list[EndpointFact]
    agents: list[AgentFact]


def build(clients: int, devices: int, seed: int) -> World:
    rng = random.Random(seed)
    rules = [
        Rule(product, f"rule-{n}", "console_seats" if n == 0 else "installed")
        for n, product in enumerate(PRODUCTS)
    ]
    per_client = devices // clients
    first = date(2026, 10, 1)
    world = World(rules, [], [], {}, {}, [], [])
    for c in range(clients):
        client, company = f"c-{c}", str(1000 + c)
        if rng.random() >= 0.05:
            world.mappings[("rmm", client, "psa")] = Mapping(company, f"Company {c}")
            world.mappings[("console", f"cust-{c}", "psa")] = Mapping(company, f"Company {c}")
        counts = dict.fromkeys(PRODUCTS, 0)
        for d in range(per_client):
            product = None if rng.random() < 0.02 else PRODUCTS[d % len(PRODUCTS)]
            world.endpoints.append(EndpointFact(f"e-{c}-{d}", "rmm", client, product))
            if product is not None:
                counts[product] += 1
            if rng.random() < 0.03:
                world.agents.append(AgentFact(f"a-{c}-{d}", "console", f"cust-{c}", PRODUCTS[0]))
        for product, seats in counts.items():
            for day in range(DAYS):
                today = first + timedelta(days=day)
                world.usage.append(UsageRow("rmm", client, product, today, seats, seats, seats, seats))
                world.licences.append(
                    UsageRow("console", f"cust-{c}", product, today, seats, seats, seats, seats)
                )
            chance = rng.random()
            rule_id = f"rule-{PRODUCTS.index(product)}"
            if chance >= 0.02 and ("rmm", client, "psa") in world.mappings:
                world.recorded[(rule_id, company)] = Recorded(
                    seats + (1 if chance < 0.12 else 0), "2026-09", f"L-{c}"
                )
    for c in range(clients // 100):  # retired: a line, no devices, no usage
        world.recorded[("rule-1", str(900_000 + c))] = Recorded(7, "2026-09", f"R-{c}")
    return world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before = peak_rss_mb()
    seconds: list[float] = []
    for round_ in range(args.rounds):
        world = build(args.clients, args.devices, seed=round_)
        started = time.perf_counter()
        rows: list[Row] = reconcile(
            world.rules,
            world.usage,
            world.licences,
            world.mappings,
            world.recorded,
            world.endpoints,
            world.agents,
            {"console"},
        )
        seconds.append(time.perf_counter() - started)
        causes: dict[str, int] = {}
        for row in rows:
            for cause in row.causes:
                causes[cause.code.value] = causes.get(cause.code.value, 0) + 1
        print(
            f"round {round_ + 1}: {args.clients:,} clients × {len(PRODUCTS)} products × "
            f"{len(world.endpoints):,} devices ({len(world.usage) + len(world.licences):,} daily rows) "
            f"reconciled in {seconds[-1]:.2f} s: {len(rows):,} rows, causes {causes}"
        )
        del world, rows
    print(
        f"reconcile: median {statistics.median(seconds):.2f} s "
        f"(range {min(seconds):.2f}–{max(seconds):.2f} s over {len(seconds)} rounds); "
        f"peak memory {peak_rss_mb():.0f} MB resident (interpreter and imports: {before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
