"""Where a run's caption type accuracy is lost: per model, by source (synthetic stage-1 diagrams, the
stand-in's document pages) and by language, and each miss (right type, type read, caption's start).

    python scripts/type_breakdown.py runs/tiny [--models stage3] [--first 40 20] [--misses]

``--first N1 N2`` also scores the first N1 stage-1 and N2 stage-2 test captions alone: a run evaluated
on larger test sets (``stage1.test_n``, ``stage2.test_n`` raised, only ``synth``, ``expert`` and
``evaluate`` rerun; the training sets stay byte-identical) then also gives the profile's own 60. This is
how issue 19's trials were compared on 220 captions instead of 60 (README, "With more test captions").
A developer's measurement, not a pipeline step; it prints, it writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

from datasets import load_from_disk

from dicrepro.evaluate.diagram_type import caption_type, type_marks


def references(run: Path, first: tuple[int, int] | None) -> dict[str, dict]:
    """Test caption id -> its diagram type, source, language and whether it is among the first N."""
    out = {}
    for stage, k in zip(("stage1", "stage2"), first or (0, 0)):  # without ``first``: no such group
        test = load_from_disk(str(run / "data" / stage))["test"]
        for i, (id_, dtype, lang) in enumerate(zip(test["id"], test["diagram_type"], test["language"])):
            out[id_] = {"type": dtype, "source": "pages" if stage == "stage2" else "synthetic",
                        "language": lang, "first": i < k}
    return out


def breakdown(run: Path, model: str, refs: dict[str, dict]) -> tuple[dict[str, tuple[int, int]], list[tuple]]:
    """``{group: (right, n)}`` for all, by source, by language and (if marked) the first N; and the misses."""
    rows = [json.loads(line) for line in open(run / "predictions" / f"{model}__captions.jsonl", encoding="utf-8")]
    # The evaluate step's own marks: a type the reader does not know (None) is left out, as in type_scores.csv
    marks = type_marks([refs[r["id"]]["type"] for r in rows], [r["text"] for r in rows])
    right, total, misses = Counter(), Counter(), []
    for row, mark in zip(rows, marks):
        if mark is None:
            continue
        ref = refs[row["id"]]
        for g in ["all", ref["source"], ref["language"]] + (["first"] if ref["first"] else []):
            total[g] += 1
            right[g] += mark
        if not mark:
            misses.append((row["id"], ref["type"], caption_type(row["text"]), row["text"][:70].replace("\n", " ")))
    return {g: (right[g], total[g]) for g in total}, misses


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder (e.g. runs/tiny)")
    ap.add_argument("--models", nargs="+", default=["base", "stage1", "stage2", "stage3"])
    ap.add_argument("--first", nargs=2, type=int, metavar=("N1", "N2"),
                    help="also score the first N1 stage-1 and N2 stage-2 test captions alone")
    ap.add_argument("--misses", action="store_true", help="list every miss")
    a = ap.parse_args(argv)
    refs = references(a.run, tuple(a.first) if a.first else None)
    for model in a.models:
        if not (a.run / "predictions" / f"{model}__captions.jsonl").exists():
            print(f"{model}: no captions in {a.run / 'predictions'}")
            continue
        scores, misses = breakdown(a.run, model, refs)
        r, n = scores["all"]
        half = 196 * math.sqrt(r / n * (1 - r / n) / n)  # normal 95% interval, in points
        print(f"{model}: " + ", ".join(f"{g} {k}/{m} = {100 * k / m:.1f}%" for g, (k, m) in sorted(scores.items()))
              + f" (all: about ±{half:.1f} points)")
        if a.misses:
            for miss in misses:
                print("   ", *miss)


if __name__ == "__main__":
    main()
