"""Train one SFT stage from the shell, alone or under ``accelerate launch`` (DDP, several processes).

    python -m dicrepro.train.launch params/tiny.yaml --stage 1
    accelerate launch --num_processes 2 -m dicrepro.train.launch params/paper.yaml --stage 1   # 2 GPUs
    accelerate launch --multi_gpu --num_processes 2 -m dicrepro.train.launch params/tiny.yaml --stage 1  # CPU

Every process runs :func:`dicrepro.train.sft.train_stage`; the main process alone writes the stage folder.
Each process logs ``rank R/N trained S steps`` when its training loop ends.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

_EPILOG = """\
examples:
  python -m dicrepro.train.launch params/tiny.yaml --stage 1
  accelerate launch --num_processes 4 -m dicrepro.train.launch params/paper.yaml --stage 2
  # 2 CPU processes (gloo) on a machine without GPUs; accelerate's --cpu would start only one
  accelerate launch --multi_gpu --num_processes 2 -m dicrepro.train.launch params/tiny.yaml --stage 1

The stage reads its data from RUN_DIR/data and the previous stage (or the base model) from
RUN_DIR/models, as the notebooks do, and writes RUN_DIR/models/stageK. Under accelerate launch each
process trains on its own share of each epoch (effective batch = sft.batch_size x sft.grad_accum x processes);
only the main process saves. Only the hf backend scales out (sft.backend: hf or auto); unsloth trains
on one GPU. See docs/training.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m dicrepro.train.launch``."""
    ap = argparse.ArgumentParser(
        prog="python -m dicrepro.train.launch", epilog=_EPILOG,
        description="Train one progressive-SFT stage (LoRA, TRL SFTTrainer) of a dicrepro run.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("params", help="params YAML of the run (e.g. params/tiny.yaml)")
    ap.add_argument("--stage", type=int, choices=(1, 2, 3), required=True,
                    help="1: captions, 2: expert-reviewed descriptions, 3: VQA")
    ap.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                    help="override a param by dotted key, value parsed as YAML (e.g. --set sft.stage1.max_steps=5); "
                         "repeatable")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train the stage, print its folder (main process). Returns the exit status."""
    args = build_parser().parse_args(argv)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    # Lines from several processes interleave on one terminal: each names its rank.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s [rank {rank}/{world}] %(levelname)s %(name)s: %(message)s")
    from dicrepro.params import ParamsError, load_params
    from dicrepro.train.backends import BackendUnavailable, preload_unsloth

    try:
        params = load_params(args.params, _overrides(args.set))
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    preload_unsloth(params)  # before dicrepro.train.sft imports transformers, peft and trl
    from dicrepro.train.sft import StageInputError, train_stage

    try:
        out = train_stage(params, args.stage)
    except (StageInputError, BackendUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if rank == 0:
        print(f"stage {args.stage} saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
