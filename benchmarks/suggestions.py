"""Client-mapping suggestions for N RMM clients × N PSA companies: the matcher as it was (difflib's
`SequenceMatcher` per pair, called in the request handler) next to the current one (rapidfuzz, in a
worker thread), in the same run.

    .venv/bin/python -m benchmarks.suggestions [--names 1000] [--rounds 3] [--min-seconds 10]

Rounds are interleaved (before, after, before, after, ...), so whatever else the machine does hits
both alike; in each round a matcher runs as many times as fit in `--min-seconds` (at least once),
and the time per run is that round's total divided by its runs. Both must choose the same pairs on
this data (every client is a respelling of one company), which the script checks. "loop stall" is
the longest the event loop went without running a 1 ms heartbeat while one run was awaited the way
the service awaits it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from difflib import SequenceMatcher

from connector.rules.service import run_suggest
from mappings.matching import Suggestion, normalize

Names = list[tuple[str, str]]


def previous_suggest(clients: Names, companies: Names, *, threshold: float = 0.75) -> list[Suggestion]:
    """The matcher before rapidfuzz, kept here as the baseline: the same normalization and greedy
    assignment, with difflib's ratio per pair."""
    candidates: list[Suggestion] = []
    by_normal: dict[str, Names] = {}
    for company_id, company_name in companies:
        by_normal.setdefault(normalize(company_name), []).append((company_id, company_name))
    for client_id, client_name in clients:
        exact = by_normal.get(normalize(client_name))
        pool = exact if exact else companies
        for company_id, company_name in pool:
            if exact:
                score = 1.0
            else:
                na, nb = normalize(client_name), normalize(company_name)
                score = SequenceMatcher(None, na, nb).ratio() if na and nb else 0.0
            if score >= threshold:
                candidates.append(
                    Suggestion(client_id, client_name, company_id, company_name, round(score, 3))
                )
    candidates.sort(key=lambda s: (-s.score, s.client_name))
    used_clients: set[str] = set()
    used_companies: set[str] = set()
    chosen: list[Suggestion] = []
    for candidate in candidates:
        if candidate.client_id in used_clients or candidate.company_id in used_companies:
            continue
        used_clients.add(candidate.client_id)
        used_companies.add(candidate.company_id)
        chosen.append(candidate)
    return sorted(chosen, key=lambda s: s.client_name.lower())


def names(count: int, seed: int = 7) -> tuple[Names, Names]:
    """Companies with three-word names, and clients that respell each one (case, punctuation, a
    legal suffix, one letter dropped), shuffled."""
    rng = random.Random(seed)
    words = [
        "alpha", "bravo", "cedar", "delta", "ember", "falcon", "granite", "harbor", "iris", "juniper",
        "kestrel", "lumen", "meadow", "nova", "orchid", "pioneer", "quartz", "river", "summit", "tundra",
    ]  # fmt: skip
    companies = [(f"p-{n}", f"{' '.join(rng.sample(words, 3)).title()} {n:04d} Ltd") for n in range(count)]
    clients = []
    for n, (_, name) in enumerate(companies):
        base = name.removesuffix(" Ltd")
        variant = [base.upper(), f"{base}, Inc.", base[:3] + base[4:], base.replace(" ", "-")][n % 4]
        clients.append((f"c-{n}", variant))
    rng.shuffle(clients)
    return clients, companies


async def stall_while(call: Callable[[], Awaitable[object]]) -> float:
    """The longest gap between 1 ms heartbeats of the event loop while `call()` is awaited."""
    longest = 0.0
    running = True

    async def heartbeat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    await call()
    running = False
    await task
    return longest


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", type=int, default=1000, help="clients and companies each (default 1000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=10.0, help="time per matcher per round")
    args = parser.parse_args()
    clients, companies = names(args.names)

    async def before() -> list[Suggestion]:  # as it was: called in the handler, on the loop
        return previous_suggest(clients, companies)

    async def after() -> list[Suggestion]:  # as the service calls it now
        return await run_suggest(clients, companies, threshold=0.75)

    targets = {"before (difflib, on the event loop)": before, "after (rapidfuzz, worker thread)": after}
    expected = {(f"p-{n}", f"c-{n}") for n in range(args.names)}
    per_run: dict[str, list[float]] = {name: [] for name in targets}
    stalls: dict[str, float] = {}
    for round_no in range(args.rounds):
        for name, target in targets.items():
            runs, started = 0, time.perf_counter()
            while True:
                chosen = await target()
                runs += 1
                if time.perf_counter() - started >= args.min_seconds:
                    break
            per_run[name].append((time.perf_counter() - started) / runs)
            pairs = {(s.company_id, s.client_id) for s in chosen}
            assert pairs == expected, f"{name}: {len(pairs & expected)} of {args.names} pairs right"
            print(
                f"round {round_no + 1}: {name}: {per_run[name][-1]:.3f} s per run ({runs} run(s))", flush=True
            )
    for name, target in targets.items():
        stalls[name] = await stall_while(target)

    print(f"\n{args.names:,} clients × {args.names:,} companies, {args.rounds} interleaved rounds")
    print(f"{'matcher':<38} {'median per run':>15} {'range':>17} {'loop stall':>11}")
    for name, times in per_run.items():
        print(
            f"{name:<38} {statistics.median(times):>13.3f} s "
            f"{min(times):>7.3f}–{max(times):.3f} s {stalls[name]:>9.3f} s"
        )
    print(f"all {args.names:,} pairs right for both")


if __name__ == "__main__":
    asyncio.run(main())
