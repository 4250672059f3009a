"""Which language does a model read the diagram type in? "What kind of diagram is this?" asked in English and
in Chinese of every stage-1 and stage-2 test diagram.

    python scripts/type_question_probe.py runs/tiny base stage1 stage3

Prints, per model, the share of replies that name the right type (``evaluate.diagram_type``'s reader), by
the question's language and by question/diagram language. README "Issue 19's bar" quotes it: on the
220-caption runs at seed 1234 the base, stage 1 and stage 3 named the right type in 78% / 78% / 80% of the
English questions and 72% / 65% / 45% of the Chinese ones, before the stage-3 type question was asked in
both languages. Greedy decoding, 12 new tokens. A developer's measurement: it prints, it writes nothing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from datasets import concatenate_datasets, load_from_disk

from dicrepro.data.vqa_kinds import TYPE_QUESTION
from dicrepro.evaluate.diagram_type import caption_type
from dicrepro.evaluate.predict import generate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished run, e.g. runs/tiny")
    ap.add_argument("models", nargs="+", help="base, stage1, stage2 or stage3 (stages: their merged model)")
    a = ap.parse_args(argv)
    columns = ["image", "diagram_type", "language"]
    ds = concatenate_datasets([load_from_disk(str(a.run / "data" / stage))["test"].select_columns(columns)
                               for stage in ("stage1", "stage2")])
    for name in a.models:
        folder = a.run / "models" / name / ("" if name == "base" else "merged")
        right = defaultdict(lambda: [0, 0])
        for q in ("en", "zh"):
            replies = generate(folder, [{"image": r["image"], "prompt": TYPE_QUESTION[q]} for r in ds],
                               batch_size=16, max_new_tokens=12)
            for row, reply in zip(ds, replies):
                for key in (q, f"{q} question / {row['language']} diagram"):
                    right[key][0] += caption_type(reply) == row["diagram_type"]
                    right[key][1] += 1
        print(name + ": " + ", ".join(f"{k} {n_right}/{n} = {100 * n_right / n:.0f}%"
                                      for k, (n_right, n) in sorted(right.items())))


if __name__ == "__main__":
    main()
