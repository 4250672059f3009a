"""The embedded tiny model: built locally from nothing, saved like any Hugging Face checkpoint, reloaded
offline with the Auto classes, and identical when rebuilt from the same seed."""

import os
import random

import pytest
import torch
from safetensors.torch import load_file

from dicrepro.params import Params
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.tiny_model import build_tiny_base, tiny_config
from dicrepro.train.tiny_tokenizer import QWEN25_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, covered_cjk, train_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a hub


def smoke_params(tmp_path, **tiny) -> Params:
    p = Params(run_dir=tmp_path / "run", seed=7)
    sizes = dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=1, vision_depth=1, vision_hidden_size=32,
                 vision_heads=2, pretrain_samples=8, pretrain_epochs=1.0)
    p.model.tiny = p.model.tiny.model_copy(update={**sizes, **tiny})
    p.model.max_pixels = 12544
    p.sft.batch_size = 4
    return p


@pytest.fixture(scope="module")
def general():
    return box_dataset(8, 0, seed=1, domain="general")


def corpus(ds):
    return list(ds["train"]["target"]) + list(ds["train"]["prompt"])


def test_tokenizer_speaks_qwen_chat_format():
    tok = train_tokenizer(["A router forwards packets to the switch.", "路由器转发数据包。"] * 5, 400)
    for t in QWEN_SPECIAL_TOKENS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    text = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
        tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n<|im_start|>assistant\n")
    assert tok.chat_template == QWEN25_VL_CHAT_TEMPLATE
    # byte-level: any text round-trips, even characters never seen in training
    assert tok.decode(tok.encode("交换机 ✓ QUIC", add_special_tokens=False)) == "交换机 ✓ QUIC"


def test_the_most_frequent_chinese_characters_can_be_made_whole_tokens():
    # 饼 (pie) is rare next to English: the BPE alone spells it in bytes, and 钟 shares its first byte
    rng = random.Random(0)
    english = [" ".join("".join(rng.choices("etaoinshrdlu", k=rng.randint(2, 7))) for _ in range(9))
               for _ in range(200)]
    corpus = english + ["这是一张饼图。"] * 4 + ["这是一张流程图，展示了告警处理的步骤。"] * 8
    plain = train_tokenizer(corpus, 400)
    assert len(plain.encode("饼", add_special_tokens=False)) == 3
    whole = train_tokenizer(corpus, 400, cjk_coverage=1.0)
    assert len(whole) == 400  # the whole characters take the place of other merges
    for ch in "这是一张饼图流程展示了告警处理的步骤":
        assert len(whole.encode(ch, add_special_tokens=False)) == 1, ch
    assert whole.decode(whole.encode("饼图 钟 ✓", add_special_tokens=False)) == "饼图 钟 ✓"
    # only the most frequent that make up the coverage: 饼 (4 of 64 occurrences) is left out at 90%
    assert set(covered_cjk(corpus, 0.9)[:5]) == set("这是一张图") and "饼" not in covered_cjk(corpus, 0.9)
    again = train_tokenizer(corpus, 400, cjk_coverage=1.0)
    assert again.get_vocab() == whole.get_vocab()


def test_config_is_consistent_for_the_vision_tower(tmp_path):
    p = smoke_params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 400)
    cfg = tiny_config(p, tok)
    assert cfg.vision_config.out_hidden_size == cfg.text_config.hidden_size
    head_dim = cfg.text_config.hidden_size // cfg.text_config.num_attention_heads
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    with pytest.raises(ValueError, match="num_key_value_heads"):  # refused on assignment (params) already
        p.model.tiny.num_key_value_heads = 3
        tiny_config(p, tok)


def test_vision_attention_is_windowed_but_in_the_last_block_unless_full_everywhere(tmp_path):
    p = smoke_params(tmp_path)
    tok = train_tokenizer(["a b c"] * 3, 400)
    p.model.tiny.vision_depth = 3
    assert tiny_config(p, tok).vision_config.fullatt_block_indexes == [2]
    assert "vision_full_attention" not in p.model.tiny.model_dump()  # at its default: old bases stay valid
    p.model.tiny.vision_full_attention = True
    assert tiny_config(p, tok).vision_config.fullatt_block_indexes == [0, 1, 2]
    assert p.model.tiny.model_dump()["vision_full_attention"] is True  # so the base is rebuilt


def test_build_reload_and_generate_offline(tmp_path, general):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    p = smoke_params(tmp_path)
    out = build_tiny_base(p, general, tmp_path / "base", tokenizer_corpus=corpus(general))
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "NOT Qwen2.5-VL-7B" in card and "pipeline_tag: image-text-to-text" in card
    losses = (out / "loss.csv").read_text().splitlines()
    assert losses[0] == "step,epoch,loss" and len(losses) > 1

    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert processor.image_processor.size["longest_edge"] == p.model.max_pixels
    row = general["train"][0]
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row["prompt"]}]}]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[[row["image"]]], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert 0 < n_image_tokens <= p.model.max_pixels // (28 * 28)
    gen = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] > inputs["input_ids"].shape[1]


def test_more_warm_up_diagrams_than_captioned_ones(tmp_path, general):
    """The warm-up and the type-reading phase see every general diagram (and its document look); the text
    pre-training only the first ``pretrain_samples`` of them."""
    import json

    assert "type_reading_epochs" not in smoke_params(tmp_path).model.tiny.model_dump()  # old bases stay valid
    p = smoke_params(tmp_path, pretrain_samples=4, vision_warmup_epochs=1, type_reading_epochs=2,
                     vision_warmup_flips=True, vision_warmup_erase=0.25)
    assert p.model.tiny.model_dump()["type_reading_epochs"] == 2  # so the base is rebuilt
    out = build_tiny_base(p, general, tmp_path / "base", tokenizer_corpus=corpus(general))
    meta = json.loads((out / "dicrepro_model.json").read_text())
    assert meta["pretrain_rows"] == 4 and meta["warmup_rows"] == 8
    # the type-reading phase reads each diagram and its document-look copy (vision_warmup_copies: 1)
    assert meta["type_reading"]["rows"] == 16 and meta["type_reading"]["loss_last"] is not None
    type_loss = (out / "type_loss.csv").read_text().splitlines()
    assert type_loss[0].startswith("step,epoch,loss")
    # model.tiny.type_reading_epochs: 2 passes over the 16 rows in batches of 4
    assert type_loss[-1].split(",")[:2] == ["8", "2.0"] and meta["type_reading"]["epochs"] == 2
    card = (out / "README.md").read_text()
    assert "tell 8 general diagrams' types" in card
    assert "each epoch random left-right and upside-down flips and 25% of the token squares blanked" in card


@pytest.mark.parametrize("freeze", [True, False])
def test_the_warmed_up_vision_tower_is_kept_fixed_while_the_text_is_learnt(tmp_path, general, freeze):
    """Two bases that differ only in how long the text pre-training ran have the same vision weights when
    the tower is frozen after its warm-up, and different ones when it trains along."""
    # two types, or there is nothing to warm up on
    two_types = general.map(lambda r, i: {"diagram_type": ("flowchart", "sequence")[i % 2]}, with_indices=True)
    towers = []
    for epochs in (1.0, 2.0):
        p = smoke_params(tmp_path, pretrain_samples=4, vision_warmup_epochs=1, pretrain_epochs=epochs,
                         freeze_vision_after_warmup=freeze)
        out = build_tiny_base(p, two_types, tmp_path / f"base-{freeze}-{epochs}", tokenizer_corpus=corpus(general))
        w = load_file(out / "model.safetensors")
        towers.append({k: v for k, v in w.items() if ".visual." in k or k.startswith("visual.")})
    assert towers[0] and towers[0].keys() == towers[1].keys()
    same = all(torch.equal(towers[0][k], towers[1][k]) for k in towers[0])
    assert same is freeze


def test_same_seed_same_model(tmp_path, general):
    p = smoke_params(tmp_path, pretrain_samples=0)
    a = build_tiny_base(p, general, tmp_path / "a", tokenizer_corpus=corpus(general))
    b = build_tiny_base(p, general, tmp_path / "b", tokenizer_corpus=corpus(general))
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    p.seed = 8
    c = build_tiny_base(p, general, tmp_path / "c", tokenizer_corpus=corpus(general))
    wc = load_file(c / "model.safetensors")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_a_base_built_from_the_same_recipe_is_kept(tmp_path, general, caplog):
    """A rerun keeps the base when seed, sizes, data and corpus are the same; any change rebuilds it."""
    p = smoke_params(tmp_path, pretrain_samples=0)
    out = build_tiny_base(p, general, tmp_path / "base", tokenizer_corpus=corpus(general), data_identity="d1")
    built = (out / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="dicrepro.train.tiny_model"):
        build_tiny_base(p, general, out, tokenizer_corpus=corpus(general), data_identity="d1")
    assert "already built from this recipe" in caplog.text
    assert (out / "model.safetensors").stat().st_mtime_ns == built
    for change in (dict(data_identity="d2"), dict(tokenizer_corpus=corpus(general) + ["gNB"])):
        kwargs = dict(tokenizer_corpus=corpus(general), data_identity="d1") | change
        build_tiny_base(p, general, out, **kwargs)
        assert (out / "model.safetensors").stat().st_mtime_ns != built, change
        built = (out / "model.safetensors").stat().st_mtime_ns
    p.model.tiny.hidden_size = 32
    build_tiny_base(p, general, out, tokenizer_corpus=corpus(general), data_identity="d2")
    assert load_file(out / "model.safetensors")["lm_head.weight"].shape[1] == 32

def test_pretraining_data_needs_the_training_columns(tmp_path, general):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['target'\]"):
        build_tiny_base(smoke_params(tmp_path), general.remove_columns("target"), tmp_path / "x",
                        tokenizer_corpus=["a"])


def test_the_output_layer_runs_only_where_a_label_is_with_the_same_loss_and_gradients(tmp_path, general):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import transformers

    from dicrepro.train.collate import VisionSFTCollator, logits_mask_supported
    from dicrepro.train.tiny_model import logits_where_labelled

    p = smoke_params(tmp_path)
    out = build_tiny_base(p, general, tmp_path / "base", tokenizer_corpus=corpus(general))
    model = AutoModelForImageTextToText.from_pretrained(out).train()
    collate = VisionSFTCollator(AutoProcessor.from_pretrained(out), p.sft.max_length)
    rows = [general["train"][i] for i in range(4)]
    if not logits_mask_supported():  # an older transformers (the GPU image's 5.17): every position, as before
        assert logits_where_labelled(collate) is collate
        pytest.skip(f"transformers {transformers.__version__} takes no logits_to_keep mask")

    def loss_and_grads(batch):
        model.zero_grad()
        out = model(**batch, num_items_in_batch=(batch["labels"][:, 1:] != -100).sum())
        out.loss.backward()
        return out, torch.cat([w.grad.flatten() for w in model.parameters() if w.grad is not None])

    batch = collate(rows)
    n_labelled = int((batch["labels"] != -100).sum())
    full, full_grads = loss_and_grads(batch)
    kept, kept_grads = loss_and_grads(logits_where_labelled(collate)(rows))
    assert kept.logits.shape == (n_labelled, model.config.text_config.vocab_size)  # not one per position
    assert full.logits.shape[0] * full.logits.shape[1] > n_labelled
    assert torch.allclose(kept.loss, full.loss, rtol=1e-6)
    assert torch.allclose(kept_grads, full_grads, atol=1e-6)
