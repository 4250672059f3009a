"""Progressive SFT on the tiny model through the real TRL trainer: three stages, lineage, resume, the
loss masking of the shared collator, and the errors a user meets first."""

import json
import os
import shutil

import pytest
import torch
from datasets import load_from_disk
from safetensors.torch import load_file

from dicrepro.params import Params, ParamsError, load_params
from dicrepro.paths import RunPaths
from dicrepro.train.backends import BackendUnavailable, resolve_backend, unsloth_importable
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.collate import IGNORE_INDEX, MaxLengthError, VisionSFTCollator, undecoded_images
from dicrepro.train.sft import StageInputError, train_stage
from dicrepro.train.tiny_model import build_tiny_base

os.environ["HF_HUB_OFFLINE"] = "1"


def tiny_params(run_dir) -> Params:
    p = Params(run_dir=run_dir, seed=5)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2, pretrain_samples=8,
        pretrain_epochs=1.0))
    p.model.max_pixels = 12544
    p.sft.backend = "hf"
    p.sft.batch_size = 4
    p.sft.logging_steps = 1
    p.sft.save_steps = 2
    p.sft.lora.r = 4
    for k in (1, 2, 3):
        p.sft.stage(k).max_steps = 2
        p.sft.stage(k).learning_rate = 1e-2
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with a tiny base model and three stage datasets (box diagrams)."""
    root = tmp_path_factory.mktemp("run")
    p = tiny_params(root)
    paths = RunPaths(root)
    general = box_dataset(8, 0, seed=1, domain="general")
    build_tiny_base(p, general, paths.base_model,
                    tokenizer_corpus=list(general["train"]["target"]) + ["Router Switch gNB AMF"])
    for k in (1, 2, 3):
        box_dataset(8, 2, seed=10 + k).save_to_disk(str(paths.stage_data(k)))
    return root


@pytest.fixture
def params(run, tmp_path):
    """Fresh params on a private copy of the run (tests may train, break or delete stages)."""
    root = tmp_path / "run"
    shutil.copytree(run, root)
    return tiny_params(root)


def weights(folder):
    return load_file(folder / "model.safetensors")


def test_three_stages_each_continue_from_the_last(params):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    paths = RunPaths(params.run_dir)
    previous = paths.base_model
    for stage in (1, 2, 3):
        out = train_stage(params, stage)
        assert out == paths.stage_model(stage)
        lineage = json.loads((out / "lineage.json").read_text())
        assert lineage["input_model"] == str(previous)
        assert lineage["base_model"] == str(paths.base_model)
        assert lineage["global_step"] == 2 and lineage["backend"] == "hf"
        assert len(lineage["data_hash"]) == 64 and lineage["versions"]["trl"]
        # LoRA changed the language model's weights, and only through the merge (same keys, no lora_*)
        before, after = weights(previous), weights(out / "merged")
        assert before.keys() == after.keys()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert changed and not any("visual" in k for k in changed)  # vision LoRA is off by default
        assert (out / "adapter" / "adapter_model.safetensors").exists()
        # the merged folder is a plain checkpoint
        AutoModelForImageTextToText.from_pretrained(out / "merged")
        AutoProcessor.from_pretrained(out / "merged")
        assert (out / "loss.csv").read_text().splitlines()[0] == "step,epoch,loss"
        assert list((out / "tensorboard").iterdir())
        card = (out / "README.md").read_text()
        assert card.startswith("---\nbase_model:") and "NOT Qwen2.5-VL-7B" in card
        previous = out / "merged"


def test_finished_stage_is_not_retrained(params, caplog):
    out = train_stage(params, 1)
    stamp = (out / "lineage.json").stat().st_mtime_ns
    caplog.set_level("INFO", logger="dicrepro.train.sft")
    assert train_stage(params, 1) == out
    assert (out / "lineage.json").stat().st_mtime_ns == stamp
    assert "already trained" in caplog.text


def test_only_what_a_stage_depends_on_retrains_it(params, caplog):
    caplog.set_level("INFO", logger="dicrepro.train.sft")
    out1 = train_stage(params, 1)
    first = json.loads((out1 / "lineage.json").read_text())
    first_adapter = (out1 / "adapter" / "adapter_model.safetensors").read_bytes()
    train_stage(params, 2)
    # stage 3's learning rate is no input of stages 1 and 2
    params.sft.stage3.learning_rate = 5e-3
    caplog.clear()
    train_stage(params, 1)
    train_stage(params, 2)
    assert caplog.text.count("already trained") == 2
    # stage 1 retrained with another learning rate: stage 2 starts from a changed model, so it retrains too
    params.sft.stage1.learning_rate = 5e-3
    caplog.clear()
    again = json.loads((train_stage(params, 1) / "lineage.json").read_text())
    assert again["params_hash"] != first["params_hash"]
    # trained anew: the first training's last checkpoint is not "resumed" (it holds the old weights)
    assert again["resumed_from"] is None and again["global_step"] == 2
    assert (out1 / "adapter" / "adapter_model.safetensors").read_bytes() != first_adapter
    train_stage(params, 2)
    assert "already trained" not in caplog.text


def kill_stage1_at_step_3_of_4(params):
    """Train stage 1 for 4 steps and kill it after step 3 (checkpoint-2 is the last one saved)."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated kill")

    params.sft.stage1.max_steps = 4
    with pytest.raises(KeyboardInterrupt):
        train_stage(params, 1, callbacks=[Kill()])


def test_killed_stage_resumes_from_its_last_checkpoint(params):
    kill_stage1_at_step_3_of_4(params)
    out = RunPaths(params.run_dir).stage_model(1)
    assert not (out / "lineage.json").exists()
    assert (out / "checkpoints" / "checkpoint-2").exists()
    train_stage(params, 1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["resumed_from"].endswith("checkpoint-2")
    assert lineage["global_step"] == 4
    steps = [int(line.split(",")[0]) for line in (out / "loss.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]  # the killed run's step 3 is replaced, not duplicated


def test_a_killed_stage_with_changed_params_starts_over(params):
    kill_stage1_at_step_3_of_4(params)
    params.sft.stage1.learning_rate = 5e-3  # the checkpoint was made with 1e-2
    out = train_stage(params, 1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["resumed_from"] is None and lineage["global_step"] == 4


def test_continue_from_adapter_trains_the_previous_adapter(params):
    params.sft.continue_from = "adapter"
    train_stage(params, 1)
    out = train_stage(params, 2)
    lineage = json.loads((out / "lineage.json").read_text())
    paths = RunPaths(params.run_dir)
    assert lineage["input_model"] == str(paths.base_model)
    assert lineage["input_adapter"] == str(paths.stage_model(1) / "adapter")
    a1 = load_file(paths.stage_model(1) / "adapter" / "adapter_model.safetensors")
    a2 = load_file(out / "adapter" / "adapter_model.safetensors")
    assert a1.keys() == a2.keys() and any(not torch.equal(a1[k], a2[k]) for k in a1)


# --- errors ------------------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_unsloth_without_gpu_fails_at_once_naming_hf(params):
    with pytest.raises(BackendUnavailable, match="no CUDA GPU.*sft.backend: hf"):
        resolve_backend("unsloth")
    params.sft.backend = "unsloth"
    with pytest.raises(BackendUnavailable, match="hf"):
        train_stage(params, 1)
    assert resolve_backend("auto") == "hf"


def test_unsloth_can_still_be_imported_first():
    """04_sft.ipynb imports params, workflow, show and sft_backends before training: none of them may
    import transformers, peft or trl, else Unsloth (imported by preload_unsloth) comes too late."""
    import subprocess
    import sys

    code = ("import sys; from dicrepro.params import Params; from dicrepro import workflow; from dicrepro.report import show; "
            "from dicrepro.train.backends import preload_unsloth; p = Params(); p.sft.backend = 'hf'; "
            "assert preload_unsloth(p) is False; "
            "print(sorted(m for m in ('transformers', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_base_model(params, tmp_path):
    shutil.rmtree(RunPaths(params.run_dir).base_model)
    with pytest.raises(StageInputError, match="base model not found: .*base.*00_base_model"):
        train_stage(params, 1)
    # a local model path is checked when the params are loaded, before any work
    f = tmp_path / "p.yaml"
    f.write_text(f"model: {{kind: local, path: {tmp_path / 'no-such-model'}}}\n")
    with pytest.raises(ParamsError, match="model.path does not exist"):
        load_params(f)


def test_stage_needs_the_previous_stage(params):
    with pytest.raises(StageInputError, match="train stage 1 first"):
        train_stage(params, 2)


def test_dataset_without_target_column(params):
    folder = RunPaths(params.run_dir).stage1_data
    load_from_disk(str(folder)).remove_columns("target").save_to_disk(str(folder) + ".new")
    shutil.rmtree(folder)
    shutil.move(str(folder) + ".new", folder)
    with pytest.raises(StageInputError, match=rf"{folder}.*lacks column\(s\) \['target'\]"):
        train_stage(params, 1)


# --- the collator ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def processor(run):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(RunPaths(run).base_model)


def test_collator_learns_only_the_assistant_answer(run, processor):
    rows = list(load_from_disk(str(RunPaths(run).stage1_data))["train"].select(range(3)))
    batch = VisionSFTCollator(processor, max_length=2048)(rows)
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["labels"][batch["input_ids"] == image_id] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    for i, row in enumerate(rows):
        learned = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert tok.decode(learned) == row["target"] + "<|im_end|>"


def test_collator_names_the_sample_whose_image_tokens_do_not_fit(run, processor):
    rows = list(load_from_disk(str(RunPaths(run).stage1_data))["train"].select(range(2)))
    with pytest.raises(MaxLengthError, match=rf"sample '{rows[0]['id']}'.*image tokens.*sft.max_length is 20"):
        VisionSFTCollator(processor, max_length=20)(rows)
    # when only the answer is too long, it is cut and the image stays whole
    full = VisionSFTCollator(processor)(rows)
    first_answer = int((full["labels"][0] != IGNORE_INDEX).nonzero().min())
    cut = VisionSFTCollator(processor, max_length=first_answer + 3)(rows)
    assert cut["input_ids"].shape[1] == first_answer + 3
    assert torch.equal(cut["pixel_values"], full["pixel_values"])


def test_caching_collator_gives_the_processors_batches_and_processes_each_row_once(run, processor):
    train = load_from_disk(str(RunPaths(run).stage1_data))["train"]
    rows = list(undecoded_images(train).select(range(5)))
    plain = VisionSFTCollator(processor, max_length=2048)
    cached = VisionSFTCollator(processor, max_length=2048, cache_mb=64)
    calls = []
    encode = cached._encode
    cached._encode = lambda batch: calls.append(len(batch)) or encode(batch)
    # rows of different lengths, met again in other batches and orders, as epochs do
    for batch in (rows[:3], rows[3:], rows[::-1], rows[1:4]):
        want, got = plain(batch), cached(batch)
        assert sorted(got) == sorted(want)
        for key in want:
            assert torch.equal(got[key], want[key]), key
    assert sum(calls) == 5  # each row processed once, the new ones of a batch together
    assert cached._cache_left < 64 * 2**20
    cached.clear_cache()
    assert torch.equal(cached(rows)["pixel_values"], plain(rows)["pixel_values"])  # processed again


def test_caching_collator_keeps_one_copy_of_an_images_patches(run, processor):
    # stage 3 asks several questions of each diagram: the rows share the image's patches
    row = undecoded_images(load_from_disk(str(RunPaths(run).stage1_data))["train"])[0]
    rows = [{**row, "prompt": f"Question {k}?", "target": f"Answer {k}."} for k in range(4)]
    cached = VisionSFTCollator(processor, max_length=2048, cache_mb=64)
    got, want = cached(rows), VisionSFTCollator(processor, max_length=2048)(rows)
    assert all(torch.equal(got[k], want[k]) for k in want)
    kept = [e["pixel_values"] for e in cached._cache.values()]
    assert len(kept) == 4 and all(p is kept[0] for p in kept)
    patch_bytes = kept[0].element_size() * kept[0].nelement()
    assert 64 * 2**20 - cached._cache_left < 2 * patch_bytes  # counted once


def test_caching_collator_reads_an_image_given_by_path(run, processor, tmp_path):
    row = undecoded_images(load_from_disk(str(RunPaths(run).stage1_data))["train"])[0]
    (tmp_path / "d.png").write_bytes(row["image"]["bytes"])
    by_path = {**row, "image": {"bytes": None, "path": str(tmp_path / "d.png")}}
    cached = VisionSFTCollator(processor, max_length=2048, cache_mb=64)
    want = VisionSFTCollator(processor, max_length=2048)([row])
    for _ in range(2):
        got = cached([by_path])
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert len(cached._cache) == 1


def test_the_collators_cache_size_decides_nothing_that_is_hashed(params):
    from dicrepro.params import dump_params
    from dicrepro.train.sft import params_hash

    off = params.model_copy(update={"sft": params.sft.model_copy(update={"cache_mb": 0})})
    assert params_hash(off, 1) == params_hash(params, 1)  # a stage trained either way is not retrained
    assert "cache_mb" not in dump_params(params)["sft"]  # earlier runs' params dumps stay current


def test_caching_collator_keeps_to_its_budget_and_still_truncates(run, processor):
    rows = list(undecoded_images(load_from_disk(str(RunPaths(run).stage1_data))["train"]).select(range(4)))
    none_kept = VisionSFTCollator(processor, max_length=2048, cache_mb=0.001)
    assert torch.equal(none_kept(rows)["input_ids"], VisionSFTCollator(processor, max_length=2048)(rows)["input_ids"])
    assert none_kept._cache == {}
    full = VisionSFTCollator(processor)(rows)
    first_answer = int((full["labels"][0] != IGNORE_INDEX).nonzero().min())
    want = VisionSFTCollator(processor, max_length=first_answer + 3)(rows)
    cut = VisionSFTCollator(processor, max_length=first_answer + 3, cache_mb=64)
    for _ in range(2):  # processed, then from the cache
        batch = cut(rows)
        assert batch["input_ids"].shape[1] == batch["labels"].shape[1] == first_answer + 3
        assert sorted(batch) == sorted(want) and all(torch.equal(batch[k], want[k]) for k in want)



# --- Unsloth's own collator (sft.collator: unsloth) ---------------------------------------------------
# Run where unsloth is installed: on the GPU machine, and on CPU by scripts/check_gpu_stack_on_cpu.sh
# (unsloth 2026.10 imports on a CPU; only its FastVisionModel refuses to load there).

needs_unsloth = pytest.mark.skipif(not unsloth_importable(), reason="unsloth is not installed")


@pytest.mark.skipif(unsloth_importable(), reason="checks the error without unsloth")
def test_unsloth_collator_without_unsloth_fails_at_once_naming_the_field(params):
    params.sft.collator = "unsloth"
    with pytest.raises(BackendUnavailable, match="sft.collator is 'unsloth'.*sft.collator: dicrepro"):
        train_stage(params, 1)
    assert not RunPaths(params.run_dir).stage_model(1).exists()  # nothing was started


@needs_unsloth
def test_unsloths_collator_learns_the_same_tokens_as_ours(run, processor):
    from transformers import AutoModelForImageTextToText

    from dicrepro.train.backends import unsloth_collator

    rows = list(load_from_disk(str(RunPaths(run).stage1_data))["train"])
    model = AutoModelForImageTextToText.from_pretrained(RunPaths(run).base_model)
    ours = VisionSFTCollator(processor, max_length=2048)(rows)
    theirs = unsloth_collator(model, processor, max_length=2048)(rows)
    same_grid = 0
    for i, row in enumerate(rows):
        learned = theirs["labels"][i][theirs["labels"][i] != IGNORE_INDEX]
        assert learned.tolist() == ours["labels"][i][ours["labels"][i] != IGNORE_INDEX].tolist(), row["id"]
        if torch.equal(ours["image_grid_thw"][i], theirs["image_grid_thw"][i]):
            # same image grid: the same tokens in the same places
            n = int(ours["attention_mask"][i].sum())
            assert torch.equal(theirs["input_ids"][i][:n], ours["input_ids"][i][:n]), row["id"]
            same_grid += 1
    assert same_grid > 0  # else the check above never ran


@needs_unsloth
def test_hf_backend_trains_with_unsloths_collator(params):
    params.sft.collator = "unsloth"
    out = train_stage(params, 1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["collator"] == "unsloth" and lineage["global_step"] == 2
    assert lineage["train_loss"] > 0

def test_same_seed_same_adapter_bytes(run, tmp_path):
    """Two trainings of the same stage from the same seed give identical weights (on CPU)."""
    digests = []
    for name in ("a", "b"):
        root = tmp_path / name
        shutil.copytree(run, root)
        p = tiny_params(root)
        p.sft.stage1.max_steps = 3  # past AdamW's first step, where tiny differences would show
        out = train_stage(p, 1)
        digests.append((out / "adapter" / "adapter_model.safetensors").read_bytes())
        digests.append((out / "merged" / "model.safetensors").read_bytes())
    assert digests[0] == digests[2] and digests[1] == digests[3]


def test_off_cuda_the_loss_takes_logits_only_where_labels_are_with_trls_loss_and_metrics(run, processor):
    """The CPU trainer's loss, gradients and logged metrics are TRL's, from the labelled positions only."""
    from trl import SFTConfig, SFTTrainer

    from dicrepro.train.backends import load_hf
    import transformers

    from dicrepro.train.collate import logits_mask_supported
    from dicrepro.train.sft_trainer import LabelledLogitsSFTTrainer, sft_trainer_class

    assert sft_trainer_class("cuda") is SFTTrainer
    if not logits_mask_supported():  # an older transformers (the GPU image's 5.17): TRL's loss everywhere
        assert sft_trainer_class("cpu") is SFTTrainer
        pytest.skip(f"transformers {transformers.__version__} takes no logits_to_keep mask")
    assert sft_trainer_class("cpu") is LabelledLogitsSFTTrainer
    p = tiny_params(run)
    rows = load_from_disk(str(RunPaths(run).stage1_data))["train"].select(range(4))
    batch = VisionSFTCollator(processor)(list(rows))
    args = SFTConfig(output_dir=str(run / "unused"), report_to="none", use_cpu=True, max_length=None,
                     remove_unused_columns=False, dataset_text_field="",
                     dataset_kwargs={"skip_prepare_dataset": True})
    seen = []
    for cls in (SFTTrainer, LabelledLogitsSFTTrainer):
        torch.manual_seed(0)
        model, _ = load_hf(p, RunPaths(run).base_model, None)
        trainer = cls(model=model, args=args, train_dataset=rows, processing_class=processor,
                      data_collator=VisionSFTCollator(processor))
        trainer.model.train()
        n_labels = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
        loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n_labels)
        loss.backward()
        grads = torch.cat([w.grad.flatten() for w in trainer.model.parameters() if w.grad is not None])
        seen.append((loss.detach(), grads, {k: v[-1] for k, v in trainer._metrics["train"].items()}))
    (trl_loss, trl_grads, trl_logged), (our_loss, our_grads, our_logged) = seen
    assert trl_grads.abs().sum() > 0
    assert torch.allclose(our_loss, trl_loss, rtol=1e-5)
    assert torch.allclose(our_grads, trl_grads, atol=1e-6)
    assert our_logged.keys() == trl_logged.keys() == {"entropy", "mean_token_accuracy", "num_tokens"}
    for name, value in trl_logged.items():
        assert our_logged[name] == pytest.approx(value, rel=1e-4), name
