"""The tiny stand-in's tokenizer: byte-level BPE trained locally, with Qwen2.5-VL's special tokens and
chat template, so that every piece of code written for the real model (chat template, image tokens,
processor) runs unchanged on the tiny one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

# Qwen2.5-VL's added tokens, in its own order (its tokenizer_config.json), so ids keep the same relative
# layout: text special tokens first, then the vision markers.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Qwen's added tokens that are not "special" (they are kept when decoding with skip_special_tokens).
QWEN_ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                     "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]

# Qwen2's pre-tokenizer split (from its tokenizer.json): contractions, letter runs, single digits,
# punctuation runs, newlines, whitespace.
QWEN_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen2.5-VL-Instruct's chat template (chat_template.json), verbatim.
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

# Text the tokenizer must always be able to spell compactly: the chat template's own words.
_TEMPLATE_TEXT = ["system\nYou are a helpful assistant.", "user\n", "assistant\n", "Picture 1: ", "Video 1: "]


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``corpus`` with Qwen2's pre-tokenizer and special tokens.

    Deterministic: the same corpus (in the same order) and vocab size give the same tokenizer.
    """
    texts = [t for t in corpus if t] + _TEMPLATE_TEXT
    tok = Tokenizer(models.BPE(byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    n_reserved = len(QWEN_SPECIAL_TOKENS) + len(QWEN_ADDED_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_reserved, min_frequency=2, show_progress=False,
        # Every byte is in the alphabet, so no text is ever out of vocabulary (as in Qwen's tokenizer).
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tok.add_special_tokens(QWEN_SPECIAL_TOKENS)
    tok.add_tokens(QWEN_ADDED_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        bos_token=None, model_max_length=32768, clean_up_tokenization_spaces=False,
        split_special_tokens=False, padding_side="right",
    )
    fast.chat_template = QWEN25_VL_CHAT_TEMPLATE
    log.info("trained byte-level BPE tokenizer: %d tokens (%d texts)", len(fast), len(texts))
    return fast
