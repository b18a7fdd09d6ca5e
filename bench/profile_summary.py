"""Summarise py-spy collapsed stacks (``-f raw``): where the samples go, by module.

    .venv/bin/python bench/profile_summary.py /tmp/worker.folded [--top 30]

Prints the share of samples whose stack passes through each of a few named areas
(ledger, structlog, pydantic, botocore, aiohttp, prometheus, json, rules, ...) and the
top functions by self time.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

__all__ = ["AREAS", "summarise"]

AREAS: dict[str, tuple[str, ...]] = {
    "ledger (a2i_worker/ledger)": ("a2i_worker/ledger/",),
    "sqlite3/aiosqlite": ("aiosqlite/", "sqlite3/"),
    "structlog": ("structlog/",),
    "pydantic": ("pydantic/", "pydantic_core"),
    "botocore/aiobotocore": ("botocore/", "aiobotocore/"),
    "aiohttp": ("aiohttp/",),
    "prometheus_client": ("prometheus_client/",),
    "rules": ("a2i_worker/rules/",),
    "messages": ("a2i_worker/messages/",),
    "json": ("json/",),
    "asyncio/anyio": ("asyncio/", "anyio/"),
}


def summarise(path: Path, top: int = 25) -> str:
    total = 0
    areas: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        for area, needles in AREAS.items():
            if any(needle in stack for needle in needles):
                areas[area] += n
        leaf[stack.split(";")[-1]] += n
    out = [f"samples: {total}", "share of samples whose stack passes through:"]
    out += [f"  {100 * n / total:5.1f}%  {a}" for a, n in areas.most_common()]
    out.append("top self time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in leaf.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.path, args.top))


if __name__ == "__main__":
    main()
