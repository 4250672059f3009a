"""What users of Qwen2.5-VL fine-tuning trip over most, each shown on the tiny model: LoRA on the same
modules under both backends, 4-bit preparation that keeps the frozen weights in 16 bit, rows too long for
their image tokens dropped and counted before training, stage 2 starting from stage 1's weights, and batched
generation padded on the left."""

import json
import os
import shutil

import pytest
import torch
from datasets import load_from_disk

from dicrepro.params import Params
from dicrepro.paths import RunPaths
from dicrepro.train.backends import (
    adapted_module_names,
    hf_lora_config,
    load_hf,
    lora_target_names,
    prepare_kbit_model,
    unsloth_peft_kwargs,
)
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.collate import (
    IGNORE_INDEX,
    VisionSFTCollator,
    length_grouping_arg,
    prompt_tokens,
    row_lengths,
    rows_that_fit,
    with_lengths,
)
from dicrepro.train.processor import load_processor
from dicrepro.train.sft import StageInputError, train_stage
from dicrepro.train.tiny_model import build_tiny_base

os.environ["HF_HUB_OFFLINE"] = "1"


def tiny_params(run_dir) -> Params:
    p = Params(run_dir=run_dir, seed=11)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2, pretrain_samples=0))
    p.model.max_pixels = 4 * 12544  # up to 64 image tokens: big diagrams need more room than small ones
    p.sft.backend = "hf"
    p.sft.batch_size = 4
    p.sft.save_steps = 100
    p.sft.lora.r = 4
    for k in (1, 2, 3):
        p.sft.stage(k).max_steps = 2
        p.sft.stage(k).learning_rate = 1e-2
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pitfalls")
    p = tiny_params(root)
    paths = RunPaths(root)
    general = box_dataset(4, 0, seed=1, domain="general")
    build_tiny_base(p, general, paths.base_model, tokenizer_corpus=list(general["train"]["target"]))
    for k in (1, 2):
        box_dataset(8, 2, seed=30 + k).save_to_disk(str(paths.stage_data(k)))
    return root


@pytest.fixture
def params(run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(run, root)
    return tiny_params(root)


# --- LoRA targets: one decision for both backends -------------------------------------------------------

@pytest.mark.parametrize("vision", [False, True])
def test_both_backends_put_lora_on_the_same_modules(params, vision):
    from transformers import AutoModelForImageTextToText

    params.sft.lora.finetune_vision_layers = vision
    params.sft.lora.modules_to_save = []
    hf, unsloth = hf_lora_config(params), unsloth_peft_kwargs(params)
    assert unsloth["target_modules"] == hf.target_modules  # one string, decided once
    assert (unsloth["r"], unsloth["lora_alpha"], unsloth["lora_dropout"], unsloth["modules_to_save"]) == (
        hf.r, hf.lora_alpha, hf.lora_dropout, hf.modules_to_save)

    base = AutoModelForImageTextToText.from_pretrained(RunPaths(params.run_dir).base_model)
    expected = lora_target_names(base, params.sft.lora)
    model, _ = load_hf(params, RunPaths(params.run_dir).base_model, None)
    assert adapted_module_names(model) == expected
    language = [n for n in expected if ".language_model." in n]
    assert {n.rsplit(".", 1)[-1] for n in language} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    visual = [n for n in expected if ".visual." in n]
    if vision:  # every linear of the vision blocks and of the merger (the projector into the LM)
        assert {n for n in visual if ".merger." in n} == {"model.visual.merger.mlp.0", "model.visual.merger.mlp.2"}
        assert set(visual) == {n for n, m in base.named_modules()
                               if isinstance(m, torch.nn.Linear) and ".visual." in n}
    else:
        assert visual == []


# --- 4-bit preparation: only norms (and LoRA) in float32 --------------------------------------------------

def _dtypes(model) -> dict[str, torch.dtype]:
    return {n: p.dtype for n, p in model.named_parameters()}


def test_kbit_preparation_casts_only_norms_and_keeps_lora_in_float32(params):
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForImageTextToText

    base = RunPaths(params.run_dir).base_model
    params.sft.lora.modules_to_save = []
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16)
    model = get_peft_model(prepare_kbit_model(model), hf_lora_config(params))
    dtypes = _dtypes(model)
    fp32 = {n for n, d in dtypes.items() if d == torch.float32}
    assert fp32 and all("lora_" in n or "norm" in n or ".ln_q." in n for n in fp32), sorted(fp32)[:5]
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if n not in fp32)  # embeddings, linears, vision
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable) and trainable <= fp32

    # PEFT's own preparation upcasts every frozen 16-bit weight: that is the memory this one saves
    peft_way = prepare_model_for_kbit_training(
        AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16), use_gradient_checkpointing=False)
    assert all(d == torch.float32 for d in _dtypes(peft_way).values())

    # and it trains: a bf16-autocast step (as the Trainer runs it) reaches every adapter
    rows = list(load_from_disk(str(RunPaths(params.run_dir).stage1_data))["train"].select(range(2)))
    batch = VisionSFTCollator(load_processor(base, params.model), 2048)(rows)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_A" in n)


# --- rows whose prompt does not fit ---------------------------------------------------------------------

def _with_big_images(folder, n_big: int):
    """The stage's train split with its first ``n_big`` images blown up 4x (more image tokens)."""
    dd = load_from_disk(str(folder))
    big = set(range(n_big))

    def grow(row, i):
        if i in big:
            row["image"] = row["image"].resize((row["image"].width * 4, row["image"].height * 4))
        return row

    dd["train"] = dd["train"].map(grow, with_indices=True)
    dd.save_to_disk(str(folder) + ".new")
    shutil.rmtree(folder)
    shutil.move(str(folder) + ".new", folder)
    return dd["train"]


def test_prompt_tokens_are_what_the_collator_makes(params):
    processor = load_processor(RunPaths(params.run_dir).base_model, params.model)
    rows = list(load_from_disk(str(RunPaths(params.run_dir).stage1_data))["train"].select(range(4)))
    batch = VisionSFTCollator(processor)(rows)
    for i, row in enumerate(rows):
        first_answer = int((batch["labels"][i] != IGNORE_INDEX).nonzero().min())
        assert prompt_tokens(processor, row["prompt"], *row["image"].size) == first_answer


def test_row_lengths_are_the_collators_unpadded_lengths(params):
    processor = load_processor(RunPaths(params.run_dir).base_model, params.model)
    rows = load_from_disk(str(RunPaths(params.run_dir).stage1_data))["train"].select(range(4))
    lengths = row_lengths(rows, processor)
    assert lengths == row_lengths(list(rows), processor)  # a Dataset or a list of rows
    for i, row in enumerate(rows):
        batch = VisionSFTCollator(processor)([row])
        assert lengths[i] == batch["input_ids"].shape[1]


def test_length_grouped_batches_hold_rows_of_similar_length(params):
    """The sampler sft.group_by_length turns on, over a stage's real mix of short answers and long texts:
    far less padding than random batches, every row still seen once per epoch."""
    from transformers import Trainer, TrainingArguments

    processor = load_processor(RunPaths(params.run_dir).base_model, params.model)
    rows = load_from_disk(str(RunPaths(params.run_dir).stage1_data))["train"]
    short = rows.map(lambda r: {"target": "B."}).map(lambda r: {"id": r["id"] + "-short"})
    from datasets import concatenate_datasets

    rows = with_lengths(concatenate_datasets([rows, short, rows, short]), processor)
    lengths = rows["length"]

    def padding(on: bool) -> tuple[int, list[int]]:
        args = TrainingArguments(output_dir=str(params.run_dir / "sampler"), per_device_train_batch_size=2,
                                 seed=1, data_seed=1, use_cpu=True, report_to="none",
                                 **length_grouping_arg(TrainingArguments, on))
        order = list(Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=rows)._get_train_sampler())
        batches = [order[i:i + 2] for i in range(0, len(order), 2)]
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches), order

    grouped, order = padding(True)
    shuffled, _ = padding(False)
    assert sorted(order) == list(range(len(rows)))
    assert grouped < shuffled / 2


def test_rows_too_long_for_their_image_tokens_are_dropped_and_counted(params, caplog):
    paths = RunPaths(params.run_dir)
    params.model.max_pixels = 16 * 12544  # 256 tokens at most: the 4x images need more than the others
    train = _with_big_images(paths.stage1_data, 3)
    processor = load_processor(paths.base_model, params.model)
    need = [prompt_tokens(processor, r["prompt"], *r["image"].size) for r in train]
    small, big = max(need[3:]), min(need[:3])
    assert small < big  # else this test would show nothing
    params.sft.max_length = small + 8  # room for the small rows' prompt, not for the big rows' image tokens
    assert params.sft.max_length <= big

    kept, dropped = rows_that_fit(train, processor, params.sft.max_length)
    assert dropped == train["id"][:3] and kept["id"] == train["id"][3:]
    # without the filter, the first batch holding a big row stops the training in the collator
    with pytest.raises(ValueError, match=rf"sample '{train['id'][0]}'.*sft.max_length is {params.sft.max_length}"):
        VisionSFTCollator(processor, params.sft.max_length)([train[0], train[3]])

    caplog.set_level("WARNING", logger="dicrepro.train.sft")
    out = train_stage(params, 1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["dropped_too_long"] == 3 and lineage["train_rows"] == len(train) - 3
    assert lineage["global_step"] == 2
    assert "3 row(s) dropped" in caplog.text and train["id"][0] in caplog.text


def test_a_stage_where_no_row_fits_fails_before_training(params):
    params.model.max_pixels = 16 * 12544  # every box diagram becomes about 100 image tokens
    params.sft.max_length = 64  # the smallest the params allow: shorter than any prompt here
    with pytest.raises(StageInputError, match=r"stage 1: no row of .*stage1.* fits in sft.max_length 64"):
        train_stage(params, 1)
    assert not (RunPaths(params.run_dir).stage_model(1) / "lineage.json").exists()


# --- stage 2 starts from stage 1 ------------------------------------------------------------------------

def _weights(folder, adapter=None) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.state_dict()


def test_stage2_trains_on_top_of_stage1s_weights(params):
    paths = RunPaths(params.run_dir)
    train_stage(params, 1)
    stage2 = train_stage(params, 2)
    assert json.loads((stage2 / "lineage.json").read_text())["input_model"] == str(paths.stage_model(1) / "merged")
    saved = _weights(stage2 / "merged")
    on_stage1 = _weights(paths.stage_model(1) / "merged", stage2 / "adapter")
    on_base = _weights(paths.base_model, stage2 / "adapter")
    s1, base = _weights(paths.stage_model(1) / "merged"), _weights(paths.base_model)
    q = next(k for k in saved if "language_model" in k and k.endswith("q_proj.weight"))
    # stage 2's weights are stage 1's plus stage 2's adapter, not the base's plus it
    assert torch.allclose(saved[q], on_stage1[q], atol=1e-6)
    assert not torch.allclose(saved[q], on_base[q], atol=1e-4)
    assert not torch.allclose(s1[q], base[q], atol=1e-4)  # stage 1 did change them
    # weights no stage trains (norms, the vision tower by default) are carried through unchanged
    norm = next(k for k in saved if k.endswith("input_layernorm.weight"))
    assert torch.equal(saved[norm], s1[norm]) and torch.equal(s1[norm], base[norm])


# --- batched generation: left padding ---------------------------------------------------------------------

def test_batched_generation_pads_on_the_left(params):
    from dicrepro.evaluate.predict import generate, load_for_inference

    base = RunPaths(params.run_dir).base_model
    rows = box_dataset(0, 4, seed=4, domain="ict", zh_share=0.5, min_nodes=3, max_nodes=8)["test"]
    model, processor = load_for_inference(base)
    seen = []

    class Spy:  # the real model, recording what generate() is given
        device = model.device

        def generate(self, **kw):
            seen.append(kw["attention_mask"])
            return model.generate(**kw)

    batched = generate(base, rows, batch_size=4, max_new_tokens=8, model=Spy(), processor=processor)
    mask = seen[0]
    lengths = mask.sum(1)
    assert lengths.min() < lengths.max()  # prompts of different lengths in one batch: padding happened
    assert (mask[:, -1] == 1).all()  # every row ends where generation starts
    for row, n in zip(mask, lengths.tolist()):
        assert row[: len(row) - n].sum() == 0  # the padding is on the left
    single = generate(base, rows, batch_size=1, max_new_tokens=8, model=model, processor=processor)
    assert batched == single


def test_length_grouping_is_asked_for_by_the_name_this_transformers_knows():
    import dataclasses

    @dataclasses.dataclass
    class Old:  # before the sampler unification
        group_by_length: bool = False

    @dataclasses.dataclass
    class Neither:
        seed: int = 0

    from transformers import TrainingArguments

    assert length_grouping_arg(TrainingArguments, True) == {"train_sampling_strategy": "group_by_length"}
    assert length_grouping_arg(Old, True) == {"group_by_length": True}
    assert length_grouping_arg(Neither, True) == {}
