"""The tiny stand-in's tokenizer: byte-level BPE trained locally, with Qwen2.5-VL's special tokens and
chat template, so that every piece of code written for the real model (chat template, image tokens,
processor) runs unchanged on the tiny one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from dicrepro.text.han import HAN_CHAR

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


def _bpe(texts: list[str], size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size, min_frequency=2, show_progress=False,
        # Every byte is in the alphabet, so no text is ever out of vocabulary (as in Qwen's tokenizer).
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def _han_counts(texts: Iterable[str]) -> list[tuple[str, int]]:
    """Each Han character of ``texts`` with its number of occurrences, most frequent first; ties by code point."""
    counts = Counter(ch for t in texts for ch in HAN_CHAR.findall(t))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _covering(ranked: list[tuple[str, int]], coverage: float) -> list[tuple[str, int]]:
    total, kept, out = sum(n for _, n in ranked), 0, []
    for ch, n in ranked:
        if kept >= coverage * total:
            break
        out.append((ch, n))
        kept += n
    return out


def covered_cjk(texts: Iterable[str], coverage: float) -> list[str]:
    """The most frequent CJK characters of ``texts`` that together make up ``coverage`` of all CJK character
    occurrences (SentencePiece's ``character_coverage``), most frequent first; ties by code point."""
    return [ch for ch, _ in _covering(_han_counts(texts), coverage)]


def train_tokenizer(corpus: Iterable[str], vocab_size: int, *, cjk_coverage: float = 0.0) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``corpus`` with Qwen2's pre-tokenizer and special tokens.

    ``cjk_coverage`` > 0 makes each of the most frequent Chinese characters one token (those making up that
    share of the corpus's CJK characters, :func:`covered_cjk`), as Qwen's own vocabulary has a token for
    each common character; the rest are spelt in byte pieces as before. Why: at 2,048 tokens and 15%
    Chinese, the BPE left 饼, 框, 甘 and 思 (in 饼图, 框图, 甘特图, 思维导图) as three bytes each, and the tiny
    model wrote 钟 for 饼 (the same first byte) or broke the name. The vocabulary stays within
    ``vocab_size``: the BPE learns as many fewer other merges as the whole characters need.
    Deterministic: the same corpus (in the same order), size and coverage give the same tokenizer.
    """
    texts = [t for t in corpus if t] + _TEMPLATE_TEXT
    n_reserved = len(QWEN_SPECIAL_TOKENS) + len(QWEN_ADDED_TOKENS)
    covered = _covering(_han_counts(texts), cjk_coverage) if cjk_coverage > 0 else []
    chars = [ch for ch, _ in covered]
    # Each covered character also stands alone on a line, once more often than the most frequent CJK
    # character occurs: no pair of bytes within or across Chinese characters is then more frequent than
    # the pairs that build a covered character, so the BPE learns those first and its Chinese word merges
    # over whole characters.
    boost = ["\n".join(chars)] * (1 + covered[0][1]) if covered else []
    tok = _bpe(texts + boost, vocab_size - n_reserved)
    split = [ch for ch in chars if len(tok.encode(ch).ids) != 1]
    if split:
        log.warning("tokenizer: %d of %d covered CJK characters are still split (vocab_size %d too small?)",
                    len(split), len(chars), vocab_size)
    tok.add_special_tokens(QWEN_SPECIAL_TOKENS)
    tok.add_tokens(QWEN_ADDED_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        bos_token=None, model_max_length=32768, clean_up_tokenization_spaces=False,
        split_special_tokens=False, padding_side="right",
    )
    fast.chat_template = QWEN25_VL_CHAT_TEMPLATE
    log.info("trained byte-level BPE tokenizer: %d tokens (%d texts%s)", len(fast), len(texts),
             f", {len(chars)} CJK characters whole" if chars else "")
    return fast
