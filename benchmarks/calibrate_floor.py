"""Where to put a model's similarity floor: relevant against unrelated memories on the demo database.

One run, against a throw-away embedded Postgres: migrates, loads the demo data (``memcli seed --demo``)
embedded with the model, and asks a fixed set of operator questions. A memory counts as relevant to a
question when its text has one of the question's keywords (a "vegetarian options" memory says vegetarian,
vegan, meat-free or plant-based); everything else is unrelated. For candidate floors it prints the share of
relevant memories kept (recall) and of unrelated ones let through, so the floor can be read off: the lowest
value that keeps the unrelated ones out of a top-10 while keeping the relevant ones in.

Usage:
    .venv/bin/python benchmarks/calibrate_floor.py                  # all-MiniLM-L6-v2 (the local default)
    .venv/bin/python benchmarks/calibrate_floor.py --embedder hashing
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
from harness import embedded_server, migrate

QUESTIONS: dict[str, str] = {
    "vegetarian options": r"vegetarian|vegan|meat-free|plant-based",
    "peanut allergy": r"peanut|nut\b|nuts\b|allerg",
    "gluten free dishes": r"gluten",
    "where can I park": r"park",
    "opening hours": r"open|hours|close",
    "book a table for tonight": r"book|reserv|table for",
    "takeaway order": r"takeaway|take-away|delivery",
    "wine list": r"wine",
    "birthday celebration": r"birthday|celebrat|anniversar",
    "kids menu": r"kid|child|famil",
}
FLOORS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="local")
    args = parser.parse_args(argv)

    import psycopg

    from memcli.embeddings import get_embedder
    from memcli.search import search
    from memcli.seed import seed_demo

    embedder = get_embedder(provider=args.embedder)
    relevant: list[float] = []
    unrelated: list[float] = []
    per_question: list[tuple[str, int, float, float, int]] = []
    with embedded_server("memcli-calibrate-") as server:
        dsn = server.create_database("calibrate")
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            seed_demo(conn, embedder, yes=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for question, pattern in QUESTIONS.items():
                result = search(
                    conn, embedder, question, top_k=1000, min_similarity=-1, exact=True, record_access=False
                )
                keyword = re.compile(pattern, re.IGNORECASE)
                rel = [h.similarity for h in result.hits if keyword.search(h.content_text)]
                unr = [h.similarity for h in result.hits if not keyword.search(h.content_text)]
                relevant += rel
                unrelated += unr
                top10_unrelated = sum(1 for h in result.hits[:10] if not keyword.search(h.content_text))
                per_question.append(
                    (
                        question,
                        len(rel),
                        float(np.median(rel)) if rel else float("nan"),
                        max(unr),
                        top10_unrelated,
                    )
                )

    print(f"similarity floor calibration — {embedder.name}, demo database (seed 42)")
    print(f"{len(relevant)} relevant and {len(unrelated)} unrelated (question, memory) pairs\n")
    print(f"{'question':28} {'relevant':>8} {'median':>7} {'max unrelated':>14} {'unrelated in top 10':>20}")
    for question, count, median, worst, top10 in per_question:
        print(f"{question:28} {count:8d} {median:7.3f} {worst:14.3f} {top10:20d}")
    rel, unr = np.asarray(relevant), np.asarray(unrelated)
    print(
        f"\nunrelated pairs: p50 {np.percentile(unr, 50):.3f}, p90 {np.percentile(unr, 90):.3f}, "
        f"p95 {np.percentile(unr, 95):.3f}, p99 {np.percentile(unr, 99):.3f}"
    )
    print(
        f"relevant pairs:  p10 {np.percentile(rel, 10):.3f}, p25 {np.percentile(rel, 25):.3f}, "
        f"p50 {np.percentile(rel, 50):.3f}"
    )
    print(f"\n{'floor':>6} {'relevant kept':>14} {'unrelated let through':>22}")
    for floor in FLOORS:
        print(f"{floor:6.2f} {np.mean(rel >= floor):14.1%} {np.mean(unr >= floor):22.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
