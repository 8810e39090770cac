"""Mapping suggestions: which client is paired with which company, and at what score."""

from __future__ import annotations

import asyncio
import random

from mappings.matching import normalize, similarity, suggest


def test_normalization_ignores_case_punctuation_and_legal_suffixes() -> None:
    assert normalize("Fabrikam, Inc.") == normalize("FABRIKAM") == "fabrikam"
    assert normalize("Smith & Sons GmbH") == "smith and sons"
    assert similarity("Contoso Ltd", "contoso") == 1.0
    assert similarity("", "Contoso") == 0.0


def test_similarity_is_the_indel_ratio_of_the_normalized_names() -> None:
    # "northwind trader" vs "northwind traders": 2 * 16 / 33
    assert abs(similarity("Northwind Trader LLC", "Northwind Traders") - 32 / 33) < 1e-9
    assert similarity("Contoso", "Adventure Works") < 0.5


def test_each_client_gets_its_best_company_and_each_company_is_proposed_once() -> None:
    clients = [
        ("c-1", "Contoso"),
        ("c-2", "Fabrikam, Inc."),
        ("c-3", "Northwind Traders"),
        ("c-4", "Northwind Traders West"),
        ("c-5", "Zeta Unmatched"),
        ("c-6", "!!!"),
    ]
    companies = [
        ("250", "Contoso Ltd"),
        ("251", "Fabrikam"),
        ("252", "Northwind Trader LLC"),
        ("253", "Adventure Works"),
        ("254", "Contoso Corp"),  # the same normalized name as 250: only one of them is proposed
        ("255", "Inc."),  # normalizes to nothing: never proposed
    ]
    chosen = suggest(clients, companies)
    pairs = {(s.client_id, s.company_id): s.score for s in chosen}
    assert set(pairs) == {("c-1", "250"), ("c-2", "251"), ("c-3", "252")}
    assert pairs[("c-1", "250")] == pairs[("c-2", "251")] == 1.0
    assert pairs[("c-3", "252")] == 0.97
    assert [s.client_name for s in chosen] == ["Contoso", "Fabrikam, Inc.", "Northwind Traders"]


def test_the_threshold_decides() -> None:
    clients, companies = [("c", "Northwind Traders West")], [("p", "Northwind Trader")]
    score = similarity("Northwind Traders West", "Northwind Trader")
    assert [s.company_id for s in suggest(clients, companies, threshold=score)] == ["p"]
    assert suggest(clients, companies, threshold=score + 0.001) == []


def test_a_thousand_by_a_thousand_pairs_every_renamed_client_with_its_company() -> None:
    rng = random.Random(7)
    words = ["alpha", "bravo", "cedar", "delta", "ember", "falcon", "granite", "harbor", "iris", "juniper"]
    companies = [(f"p-{n}", f"{' '.join(rng.sample(words, 3))} {n:04d} Ltd") for n in range(1000)]
    # the RMM spells each name a little differently: case, punctuation, a suffix, one letter dropped
    clients = []
    for n, (_, name) in enumerate(companies):
        base = name.removesuffix(" Ltd")
        variant = [base.upper(), f"{base}, Inc.", base[:3] + base[4:], base.replace(" ", "-")][n % 4]
        clients.append((f"c-{n}", variant))
    chosen = suggest(clients, companies)
    assert {(s.client_id, s.company_id) for s in chosen} == {(f"c-{n}", f"p-{n}") for n in range(1000)}


async def test_suggestions_leave_the_event_loop_free_while_they_run() -> None:
    """Other work of the process (webhooks, the worker) goes on while the names are compared."""
    from connector.rules.service import run_suggest

    names = [(f"id-{n}", f"company number {n} of the test") for n in range(300)]
    ticks = 0
    running = True

    async def heartbeat() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    before = ticks
    chosen = await run_suggest(names, names, threshold=0.75)
    during = ticks - before
    running = False
    await task
    assert len(chosen) == 300
    assert during > 0  # the loop ran the heartbeat while the matcher worked


def test_a_rejected_pair_is_never_proposed_and_frees_the_company() -> None:
    clients = [("c-1", "Contoso"), ("c-2", "Contoso West"), ("c-3", "Fabrikam")]
    companies = [("250", "Contoso Ltd"), ("251", "Contoso Wes"), ("252", "Fabrikam")]
    before = {(s.client_id, s.company_id) for s in suggest(clients, companies, threshold=0.6)}
    assert before == {("c-1", "250"), ("c-2", "251"), ("c-3", "252")}
    # c-1's exact match is rejected: it gets its next best company by name instead
    after = suggest(clients, companies, threshold=0.6, rejected={("c-1", "250"), ("c-2", "251")})
    pairs = {(s.client_id, s.company_id) for s in after}
    assert ("c-1", "250") not in pairs and ("c-2", "251") not in pairs
    assert ("c-3", "252") in pairs
    # with 251 rejected for c-2, the freed company 250 can go to c-2, and c-1 takes 251
    assert pairs == {("c-1", "251"), ("c-2", "250"), ("c-3", "252")}
    # a link the RMM itself holds is dropped too when rejected
    linked = suggest(clients, companies, linked={"c-3": "250"}, rejected={("c-3", "250")})
    assert all(s.linked is False for s in linked)
    assert {(s.client_id, s.company_id) for s in linked} >= {("c-3", "252")}
