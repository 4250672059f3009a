"""The one vision data collator, shared by pre-training and every SFT backend.

A row (``image``, ``prompt``, ``target``) becomes a chat: user = [image, prompt], assistant = [target].
The processor's chat template renders it, the processor expands the image placeholder into the image's
tokens, and the labels keep only the assistant's answer and its closing ``<|im_end|>``: the system
prompt, the user's turn, the image tokens and the padding are all masked with -100.

:func:`rows_that_fit` runs once before training: a row whose prompt (image tokens included) does not fit in
``sft.max_length`` would be cut inside its image tokens, which Qwen2.5-VL cannot run ("image features and
image tokens do not match"); such rows are dropped and counted up front instead of stopping a long
training at the batch that holds one.

Every epoch would decode each row's image and run the processor on it again: on 2 CPU cores that was
4.7 ms a row, 40% of a tiny type-reading step. With ``cache_mb`` the collator keeps each row's encoding
(its tokens, labels and pixel values) and builds later batches from them, the same tensors as the
processor's (tested); rows whose image comes undecoded (``datasets.Image(decode=False)``, see
:func:`undecoded_images`) are not even decoded again.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence

import torch
from datasets import Image as ImageFeature

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
_IMAGE_KEYS = ("pixel_values", "image_grid_thw")  # one row per image patch / per image, not per token


class MaxLengthError(ValueError):
    """A sample's image tokens (or its whole prompt) do not fit in ``max_length``."""


def chat_messages(prompt: str, target: str | None = None) -> list[dict]:
    """The chat of one row: user turn (image + prompt) and, for training, the assistant's answer."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if target is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
    return msgs


def rgb(image):
    """``image`` in RGB mode (datasets may hold palette or RGBA PNGs; image processors want 3 channels);
    an undecoded ``{"bytes", "path"}`` image is decoded first, as ``datasets`` would."""
    if isinstance(image, dict):
        image = ImageFeature().decode_example(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def undecoded_images(dataset):
    """``dataset`` with its ``image`` column left as encoded bytes (``{"bytes", "path"}``): a caching
    :class:`VisionSFTCollator` then decodes each image once, not once per epoch."""
    return dataset.cast_column("image", ImageFeature(decode=False))


def _image_key(image) -> bytes | None:
    """What identifies an undecoded image (a digest of its bytes, or its path); None for a decoded one."""
    if not isinstance(image, dict):
        return None
    if image.get("bytes") is not None:
        return hashlib.blake2b(image["bytes"], digest_size=16).digest()
    return f"path:{image.get('path')}".encode() if image.get("path") else None


def labelled_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, targets)`` for a batch's ``labels`` (``-100`` where nothing is learnt): ``keep`` is the
    boolean ``(batch, length)`` mask of the positions whose next token is a label, ``targets`` those labels
    in the same (row-major) order. Given to Qwen2.5-VL's forward as ``logits_to_keep``, the mask makes it
    compute the output layer at those positions only."""
    shifted = labels[:, 1:]
    keep = torch.nn.functional.pad(shifted != -100, (0, 1), value=False)
    return keep, shifted[shifted != -100]


def logits_mask_supported() -> bool:
    """Whether this transformers' models take a boolean ``(batch, length)`` mask as ``logits_to_keep``.

    Why: older 5.x releases (5.17, the lent GPU image's) only slice ``hidden_states[:, logits_to_keep]``,
    which fails on a 2-D mask; there the output layer is computed at every position, as before.
    """
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    try:
        kept = slice_logits_to_keep(torch.zeros(1, 2, 1), torch.tensor([[True, False]]))
    except Exception:  # noqa: BLE001 (a release whose helper takes no masks, whatever it raises)
        return False
    return tuple(kept.shape) == (1, 1)


def _find(seq: list[int], sub: list[int], start: int = 0) -> int:
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i:i + n] == sub:
            return i
    return -1


class VisionSFTCollator:
    """Turn rows ``{"id", "image", "prompt", "target"}`` into model inputs with assistant-only labels.

    ``max_length`` caps the sequence. A row whose prompt (image tokens included) does not fit raises
    :class:`MaxLengthError` naming the row id, instead of transformers' cryptic "image features and
    image tokens do not match"; a row whose *answer* does not fit is truncated at the end (logged).

    ``cache_mb`` > 0 keeps up to that many MiB of row encodings (module docstring): rows met again are not
    processed again. Only rows whose image is undecoded bytes are kept (a decoded image has no cheap
    identity); the first ones met fill the budget, the rest are processed every time (together, as a batch).
    """

    def __init__(self, processor, max_length: int | None = None, cache_mb: float = 0):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.image_token_id = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.im_end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.response_marker = self.tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self._warned: set[str] = set()
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self._patches: dict[bytes, torch.Tensor] = {}  # one copy of each kept image's patches
        self._cache_left = int(cache_mb * 2**20)

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        if self._cache_left or self._cache:
            batch = self._from_rows(rows)
        else:
            batch = self._encode(rows)
        input_ids, labels = batch["input_ids"], batch["labels"]
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            self._check_fits(rows, input_ids, batch["attention_mask"], labels)
            for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
                if key in batch:
                    batch[key] = batch[key][:, :self.max_length]
            batch["labels"] = labels[:, :self.max_length]
        return batch

    def _encode(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        """The processor's batch for ``rows`` (padded on the right) with assistant-only ``labels``."""
        texts = [self.processor.apply_chat_template(chat_messages(r["prompt"], r["target"]), tokenize=False)
                 for r in rows]
        images = [[rgb(r["image"])] for r in rows]
        batch = dict(self.processor(text=texts, images=images, padding=True, padding_side="right",
                                    return_tensors="pt"))
        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for i, row in enumerate(rows):
            ids = input_ids[i].tolist()
            start = _find(ids, self.response_marker)
            if start < 0:
                raise ValueError(f"sample {row.get('id', i)!r}: no assistant turn found after the chat template")
            a = start + len(self.response_marker)
            end = ids.index(self.im_end_id, a)  # the answer's own <|im_end|> is learned (it stops generation)
            labels[i, a:end + 1] = input_ids[i, a:end + 1]
        batch["labels"] = labels
        return batch

    def _each(self, rows: Sequence[dict]) -> list[dict[str, torch.Tensor]]:
        """Each row's own encoding, unpadded, from one processor call for all of them (as fast as a batch):
        token-wise tensors cut to the row's length (the padding is on the right), its image's patches."""
        batch = self._encode(rows)
        lengths = batch["attention_mask"].sum(1).tolist()
        patches = torch.split(batch["pixel_values"], batch["image_grid_thw"].prod(-1).tolist())
        out = []
        for i, n in enumerate(lengths):
            enc = {k: v[i:i + 1, :n] for k, v in batch.items() if k not in _IMAGE_KEYS}
            enc["pixel_values"], enc["image_grid_thw"] = patches[i], batch["image_grid_thw"][i:i + 1]
            out.append(enc)
        return out

    def _keep(self, key: tuple, enc: dict[str, torch.Tensor]) -> None:
        """Keep ``enc`` while the budget lasts; rows of one image (stage 3 asks several questions of each
        diagram) share one copy of its patches, counted once."""
        shared = self._patches.get(key[0])
        if shared is not None and not torch.equal(shared, enc["pixel_values"]):
            shared = None
        # copies: the encoding may be a slice of a whole batch's tensors, which would stay alive with it
        enc = {k: shared if k == "pixel_values" and shared is not None else v.clone() for k, v in enc.items()}
        size = sum(v.element_size() * v.nelement() for k, v in enc.items() if k != "pixel_values" or shared is None)
        if size <= self._cache_left:
            self._cache[key] = enc
            self._patches.setdefault(key[0], enc["pixel_values"])
            self._cache_left -= size

    def _from_rows(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        """The batch :meth:`_encode` would make, put together from each row's own encoding (kept ones from
        the cache, the others processed together): token-wise tensors padded on the right as the processor
        pads (input ids with the pad token, the rest with 0, labels with -100), image tensors concatenated
        in row order."""
        keys = []
        for r in rows:
            image_key = _image_key(r["image"])
            keys.append(None if image_key is None else (image_key, r["prompt"], r["target"]))
        missing = [i for i, k in enumerate(keys) if k is None or k not in self._cache]
        fresh = dict(zip(missing, self._each([rows[i] for i in missing]))) if missing else {}
        for i, enc in fresh.items():
            if keys[i] is not None and keys[i] not in self._cache:
                self._keep(keys[i], enc)
        encs = [fresh[i] if i in fresh else self._cache[k] for i, k in enumerate(keys)]
        length = max(e["input_ids"].shape[1] for e in encs)
        pad = {"input_ids": self.tokenizer.pad_token_id, "labels": IGNORE_INDEX}
        batch = {}
        for key in encs[0]:
            if key in _IMAGE_KEYS:
                batch[key] = torch.cat([e[key] for e in encs])
            else:
                batch[key] = torch.cat([torch.nn.functional.pad(e[key], (0, length - e[key].shape[1]),
                                                                value=pad.get(key, 0)) for e in encs])
        return batch

    def clear_cache(self) -> None:
        """Drop every kept encoding (after a training: the Trainer may keep the collator alive a while)."""
        self._cache.clear()
        self._patches.clear()

    def _check_fits(self, rows, input_ids, attention_mask, labels) -> None:
        for i, row in enumerate(rows):
            ids = input_ids[i]
            img_pos = (ids == self.image_token_id).nonzero()
            last_img = int(img_pos.max()) if len(img_pos) else -1
            answer = (labels[i] != IGNORE_INDEX).nonzero()
            first_answer = int(answer.min()) if len(answer) else len(ids)
            sid = row.get("id", f"#{i}")
            if last_img >= self.max_length or first_answer >= self.max_length:
                raise MaxLengthError(
                    f"sample {sid!r}: its prompt needs {first_answer} tokens ({len(img_pos)} of them image tokens) "
                    f"but sft.max_length is {self.max_length}; raise sft.max_length or lower model.max_pixels "
                    f"(fewer image tokens)")
            length = int(attention_mask[i].sum())
            if length > self.max_length and sid not in self._warned:
                self._warned.add(sid)
                log.warning("sample %r: %d tokens > sft.max_length %d, its answer is truncated", sid, length,
                            self.max_length)


def prompt_tokens(processor, prompt: str, width: int, height: int) -> int:
    """Tokens before the answer of a row: chat template, the user's prompt and the image's tokens at the
    processor's pixel limits (its ``<|image_pad|>`` placeholder expands to one token per 28x28 pixels)."""
    from dicrepro.train.processor import image_tokens, pixel_limits

    text = processor.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
    n_text = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    lo, hi = pixel_limits(processor.image_processor)

    class _Limits:  # the shape of params.model that image_tokens reads
        min_pixels, max_pixels = lo, hi

    return n_text - 1 + image_tokens(width, height, _Limits)


def _image_size(image) -> tuple[int, int]:
    from PIL import Image

    if isinstance(image, dict):  # an undecoded datasets.Image: read the header only
        src = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
        with Image.open(src) as im:
            return im.size
    return image.size


def rows_that_fit(rows, processor, max_length: int | None):
    """``(kept, dropped_ids)``: the rows (a ``datasets.Dataset`` or a list of dicts) whose prompt, image
    tokens included, leaves room for at least one answer token in ``max_length``, and the ids of the
    others. Image sizes come from the image headers, so this is cheap even for thousands of rows."""
    if max_length is None or len(rows) == 0:
        return rows, []
    view = _header_view(rows)
    keep, dropped = [], []
    for i, (row, n) in enumerate(zip(view, _prompt_lengths(view, processor))):
        if n < max_length:
            keep.append(i)
        else:
            dropped.append(row.get("id", f"#{i}"))
    if not dropped:
        return rows, []
    kept = rows.select(keep) if hasattr(rows, "select") else [rows[i] for i in keep]
    return kept, dropped


def _header_view(rows):
    """``rows`` with undecoded images (a Dataset's ``image`` column is read from its header only)."""
    if hasattr(rows, "cast_column"):
        from datasets import Image as ImageFeature

        return rows.cast_column("image", ImageFeature(decode=False)).select_columns(["id", "image", "prompt"])
    return rows


def _prompt_lengths(view, processor) -> list[int]:
    return [prompt_tokens(processor, row["prompt"], *_image_size(row["image"])) for row in view]


def row_lengths(rows, processor) -> list[int]:
    """Each row's tokens as the collator makes them, before padding: its prompt with the image tokens and its
    answer with the closing ``<|im_end|>``. From the image headers and the texts, without decoding an image:
    the lengths that let training batch rows of similar length together (less padding)."""
    targets = rows["target"] if hasattr(rows, "column_names") else [r["target"] for r in rows]
    answer = [len(ids) + 2 for ids in processor.tokenizer(list(targets), add_special_tokens=False)["input_ids"]]
    return [p + a for p, a in zip(_prompt_lengths(_header_view(rows), processor), answer)]


def with_lengths(rows, processor):
    """``rows`` (a ``datasets.Dataset``) with a ``length`` column from :func:`row_lengths`, the column the
    Trainer's length-grouped sampler reads (one already there is replaced)."""
    if "length" in rows.column_names:
        rows = rows.remove_columns("length")
    return rows.add_column("length", row_lengths(rows, processor))


def length_grouping_arg(config_cls, on: bool) -> dict:
    """``{name: value}`` that turns length-grouped batches on or off in this transformers:
    ``train_sampling_strategy`` since the sampler unification of early 2026 (transformers PR 43138),
    ``group_by_length`` before it; ``{}`` (random batches) where the config class has neither."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length" if on else "random"}
    if "group_by_length" in names:
        return {"group_by_length": on}
    if on:
        log.warning("%s has neither train_sampling_strategy nor group_by_length: batches are drawn at random",
                    config_cls.__name__)
    return {}
