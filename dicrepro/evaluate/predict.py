"""Batched deterministic generation: the model's answers to held-out prompts, written as predictions JSONL.

Greedy decoding, or beam search with ``num_beams`` > 1 (never sampling), so that scores are reproducible;
left padding so that every row of a batch ends where generation starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from dicrepro.progress import tqdm
from transformers import AutoModelForImageTextToText

from dicrepro.atomic import append_jsonl, matches_json_record, read_jsonl, write_json_atomic
from dicrepro.train.collate import chat_messages, rgb
from dicrepro.train.model_folder import check_model_folder
from dicrepro.train.patch_embed import use_matmul_patch_embed
from dicrepro.train.processor import load_processor

log = logging.getLogger(__name__)


def load_for_inference(model_dir: str | Path, model_params=None):
    """``(model, processor)`` from a saved folder, in eval mode, on CUDA when there is one; with
    ``model_params`` (``params.model``) images are resized to the run's pixel limits."""
    model_dir = check_model_folder(model_dir)  # config, safetensors weights (never pickle), processor
    cuda = torch.cuda.is_available()
    model = AutoModelForImageTextToText.from_pretrained(
        str(model_dir), dtype=torch.bfloat16 if cuda else torch.float32, device_map={"": 0} if cuda else None,
        use_safetensors=True)
    use_matmul_patch_embed(model)
    model.eval()
    return model, load_processor(model_dir, model_params)


@torch.inference_mode()
def _generate_batch(model, processor, rows: Sequence[dict], max_new_tokens: int, num_beams: int = 1) -> list[str]:
    texts = [processor.apply_chat_template(chat_messages(r["prompt"]), tokenize=False, add_generation_prompt=True)
             for r in rows]
    images = [[rgb(r["image"])] for r in rows]
    inputs = processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
    inputs = inputs.to(model.device)
    tok = processor.tokenizer
    out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, num_beams=num_beams,
                         pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [decode_text(tok, ids).strip() for ids in new.tolist()]


def _byte_decoder() -> dict[str, int]:
    # The byte-level BPE alphabet (GPT-2's, used by Qwen's tokenizers): each byte is one printable char.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


_BYTES = _byte_decoder()


def decode_text(tokenizer, ids: Sequence[int]) -> str:
    """``ids`` as text without special tokens, and never with U+FFFD.

    A greedy model may stop (or ramble) in the middle of a multi-byte character: a byte-level tokenizer
    then decodes the stray bytes as U+FFFD. Such texts are decoded again from their bytes, keeping only
    whole UTF-8 characters (an incomplete trailing sequence is trimmed, an invalid one dropped); a
    tokenizer that is not byte-level has its U+FFFD removed.
    """
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if "\ufffd" not in text:
        return text
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens([i for i in ids if i not in special])
    joined = "".join(p for p in pieces if p)
    if all(ch in _BYTES for ch in joined):
        return bytes(_BYTES[ch] for ch in joined).decode("utf-8", errors="ignore")
    return text.replace("\ufffd", "")


def _batches(rows, batch_size: int):
    for i in range(0, len(rows), batch_size):
        yield [rows[j] for j in range(i, min(i + batch_size, len(rows)))]


def generate(model_dir, rows, *, batch_size: int = 8, max_new_tokens: int = 160, model=None,
             processor=None, on_batch=None, model_params=None, progress: bool = True, num_beams: int = 1) -> list[str]:
    """Answers for ``rows`` (dicts or a Dataset with ``image`` and ``prompt``), in order: greedy, or the
    best of a beam search over ``num_beams`` beams.

    ``on_batch(rows, texts)`` is called after every batch (used to append predictions as they come).
    A tqdm bar shows samples/s (``progress=False``: none, for callers with a bar of their own).
    """
    if model is None or processor is None:
        model, processor = load_for_inference(model_dir, model_params)
    texts: list[str] = []
    bar = tqdm(total=len(rows), desc=f"generate {Path(str(model_dir)).name}", unit="sample", disable=not progress)
    t0 = time.time()
    for batch in _batches(rows, batch_size):
        out = _generate_batch(model, processor, batch, max_new_tokens, num_beams)
        texts += out
        if on_batch is not None:
            on_batch(batch, out)
        bar.update(len(batch))
        bar.set_postfix(samples_per_s=f"{len(texts) / max(time.time() - t0, 1e-9):.2f}")
    bar.close()
    return texts


def predict_to_jsonl(model_dir, model_name: str, dataset, out_path, *, batch_size: int = 8,
                     max_new_tokens: int = 160, model_params=None, identity: dict | None = None,
                     num_beams: int = 1) -> Path:
    """Append ``{"model", "id", "prompt", "text"}`` lines for every row of ``dataset`` to ``out_path``.

    Ids already in the file are skipped, so a rerun costs nothing and a crash loses at most one batch.
    ``identity`` (JSON-able: what the predictions depend on, e.g. the model's and the data's hashes and
    the generation settings) is kept beside the file (``NAME.identity.json``); when it differs from the
    one the file was written with, or the file has none, the old predictions are discarded.
    """
    out_path = Path(out_path)
    if identity is not None:
        meta = out_path.with_name(out_path.stem + ".identity.json")
        if out_path.exists() and not matches_json_record(meta, identity):
            log.info("%s: the model, data or generation settings changed since %s was written: predicting "
                     "again", model_name, out_path)
            out_path.unlink()
        # written before any prediction, so that a crash leaves rows that belong to this identity
        write_json_atomic(meta, identity)
    done = {r["id"] for r in read_jsonl(out_path)} if out_path.exists() else set()
    todo = [i for i, rid in enumerate(dataset["id"]) if rid not in done]
    if not todo:
        log.info("%s: all %d predictions already in %s", model_name, len(done), out_path)
        return out_path
    log.info("%s: %d to predict (%d already in %s)", model_name, len(todo), len(done), out_path)
    rows = dataset.select(todo) if hasattr(dataset, "select") else [dataset[i] for i in todo]

    def write(batch, texts):
        for row, text in zip(batch, texts):
            append_jsonl(out_path, {"model": model_name, "id": row["id"], "prompt": row["prompt"], "text": text})

    generate(model_dir, rows, batch_size=batch_size, max_new_tokens=max_new_tokens, on_batch=write,
             model_params=model_params, num_beams=num_beams)
    return out_path
