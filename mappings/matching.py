"""Suggest RMM client ↔ PSA company pairs by the RMM's own links, then by name similarity.

Names are normalized (case, punctuation, legal suffixes such as "Inc" or "GmbH") and compared with
rapidfuzz's `fuzz.ratio` (the normalized Indel similarity, computed in C++: 1,000 × 1,000 names take
a fraction of a second); each client gets its best company above a threshold, and a company is
proposed only once. A pair an engineer rejected is never proposed again: the client gets its next
best company instead, and the company stays free for another client. CPU-bound: async callers
run `suggest` in a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from rapidfuzz import fuzz, process

LEGAL_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "gmbh",
    "ag",
    "co",
    "corp",
    "corporation",
    "company",
    "plc",
    "bv",
    "sa",
    "sarl",
    "pty",
    "srl",
    "the",
}


@dataclass(frozen=True)
class Suggestion:
    client_id: str
    client_name: str
    company_id: str
    company_name: str
    score: float
    linked: bool = False
    """The RMM links this client to this company (not a name match)."""


def normalize(name: str) -> str:
    words = re.sub(r"[^a-z0-9 ]+", " ", name.lower().replace("&", " and ")).split()
    return " ".join(w for w in words if w not in LEGAL_SUFFIXES)


def similarity(a: str, b: str) -> float:
    na, nb = normalize(a), normalize(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    return float(fuzz.ratio(na, nb)) / 100.0


def suggest(
    clients: list[tuple[str, str]],
    companies: list[tuple[str, str]],
    *,
    threshold: float = 0.75,
    linked: Mapping[str, str] | None = None,
    rejected: Collection[tuple[str, str]] = (),
) -> list[Suggestion]:
    """Greedy best-first assignment of (id, name) clients to (id, name) companies. `linked` maps a
    client id to the company the RMM itself links it to: that pair is proposed with score 1.0
    ahead of every name match, when the company is among `companies`. `rejected` holds (client id,
    company id) pairs that are never proposed, however well they match."""
    refused = set(rejected)
    candidates: list[Suggestion] = []
    names = dict(companies)
    for client_id, client_name in clients:
        company_id = (linked or {}).get(client_id)
        if company_id is not None and company_id in names:
            candidates.append(
                Suggestion(client_id, client_name, company_id, names[company_id], 1.0, linked=True)
            )
    by_normal: dict[str, list[tuple[str, str]]] = {}
    normal_names: list[str] = []
    for company_id, company_name in companies:
        normal = normalize(company_name)
        normal_names.append(normal)
        if normal:  # a name that is only a suffix or punctuation ("Inc.") matches nothing
            by_normal.setdefault(normal, []).append((company_id, company_name))
    for client_id, client_name in clients:
        normal = normalize(client_name)
        if not normal:
            continue
        exact = [(cid, cname) for cid, cname in by_normal.get(normal, ()) if (client_id, cid) not in refused]
        if exact:  # the same normalized name: only those companies, at 1.0
            candidates += [Suggestion(client_id, client_name, cid, cname, 1.0) for cid, cname in exact]
            continue
        # every company at or above the threshold, scored in one C++ pass over the names
        for _, score, index in process.extract(
            normal,
            normal_names,
            scorer=fuzz.ratio,
            processor=None,
            score_cutoff=threshold * 100,
            limit=None,
        ):
            if not normal_names[index]:
                continue
            company_id, company_name = companies[index]
            candidates.append(
                Suggestion(client_id, client_name, company_id, company_name, round(score / 100, 3))
            )
    candidates = [c for c in candidates if (c.client_id, c.company_id) not in refused]
    candidates.sort(key=lambda s: (not s.linked, -s.score, s.client_name))
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
