"""Loading a model for LoRA training: the two backends, as plain functions (``BACKENDS[name]``).

``hf``: transformers + PEFT (float32 on CPU; bitsandbytes 4-bit QLoRA on CUDA when asked).
``unsloth``: Unsloth's FastVisionModel (CUDA only), imported lazily so CPU machines never need it.
Both return ``(model, processor)`` with the LoRA adapter attached and trainable, ready for TRL's
SFTTrainer with the collator of :func:`make_collator` (``sft.collator``: dicrepro's, or Unsloth's).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import torch

from dicrepro.train.collate import VisionSFTCollator, chat_messages, rgb
from dicrepro.train.model_folder import check_adapter_folder, check_model_folder
from dicrepro.train.patch_embed import use_matmul_patch_embed
from dicrepro.train.processor import load_processor

# transformers, peft and trl are imported inside the functions: importing this module must leave them
# unimported, so that preload_unsloth() can still come first.

log = logging.getLogger(__name__)

_LANGUAGE_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Qwen2.5-VL vision blocks: fused qkv + proj in attention, gated MLP; the merger's two linears.
_VISION_MODULES = ("qkv", "proj", "gate_proj", "up_proj", "down_proj", r"mlp\.0", r"mlp\.2")


class BackendUnavailable(RuntimeError):
    """The requested training backend cannot run on this machine."""


def cuda_available() -> bool:
    return torch.cuda.is_available()


def unsloth_importable() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def world_size() -> int:
    """Processes training together (``WORLD_SIZE``, set by ``accelerate launch``/torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_backend(name: str) -> str:
    """``auto`` -> ``unsloth`` with CUDA and unsloth installed in a single process, else ``hf``; other
    names are checked."""
    if name == "auto":
        return "unsloth" if cuda_available() and unsloth_importable() and world_size() == 1 else "hf"
    if name == "unsloth" and world_size() > 1:
        raise BackendUnavailable(
            f"sft.backend is 'unsloth' but {world_size()} processes were launched: Unsloth trains on one GPU. "
            "Set sft.backend: hf (transformers + PEFT + TRL, DDP under accelerate launch) or launch one process.")
    if name == "unsloth" and not cuda_available():
        raise BackendUnavailable(
            "sft.backend is 'unsloth' but this machine has no CUDA GPU: Unsloth only trains on NVIDIA GPUs. "
            "Set sft.backend: hf (transformers + PEFT + TRL, runs on CPU) or sft.backend: auto.")
    if name == "unsloth" and not unsloth_importable():
        raise BackendUnavailable(
            "sft.backend is 'unsloth' but the unsloth package is not installed: pip install -e .[gpu], "
            "or set sft.backend: hf.")
    return name


def preload_unsloth(params) -> bool:
    """Import unsloth now when this run will train with it (``sft.backend`` unsloth, or auto on one CUDA
    GPU with unsloth installed, or ``sft.collator`` unsloth there); returns whether it did.

    Unsloth patches transformers, peft and trl when it is imported: imported after them it warns and
    applies only part of its speed-ups. Call this first thing, before ``dicrepro.train.sft`` (04_sft.ipynb and
    ``python -m dicrepro.train.launch`` do). Without CUDA it does nothing: ``train_stage`` then fails with
    the clear error of :func:`resolve_backend` (or picks ``hf`` under ``auto``).
    """
    s = params.sft
    if (s.backend == "hf" and s.collator != "unsloth") or world_size() > 1 or not (
            cuda_available() and unsloth_importable()):
        return False
    late = [m for m in ("transformers", "peft", "trl") if m in sys.modules]
    if late:
        log.warning("unsloth is imported after %s: some of its patches may not apply; import "
                    "dicrepro.train.backends.preload_unsloth(params) before anything else", ", ".join(late))
    import unsloth  # noqa: F401, PLC0415 (its import patches transformers, peft and trl)

    return True


def lora_target_regex(lora) -> str:
    """The one decision of where LoRA goes, for both backends: a PEFT ``target_modules`` regex (PEFT
    full-matches it against each module's dotted name) over the language model's linears, plus the vision
    tower's blocks and its merger (the vision-to-language projector) when ``lora.finetune_vision_layers``
    (``all-linear`` in PEFT would always include the vision tower). The hf backend passes it to
    ``LoraConfig``, the unsloth backend to ``FastVisionModel.get_peft_model`` (which hands a string on to
    PEFT unchanged), so both adapt the same modules: :func:`lora_target_names` lists them."""
    names = _LANGUAGE_MODULES if lora.target_modules == "all-linear" else tuple(lora.target_modules)
    parts = [rf".*language_model\.layers\.\d+\..*\.({'|'.join(names)})"]
    if lora.finetune_vision_layers:
        vnames = _VISION_MODULES if lora.target_modules == "all-linear" else tuple(lora.target_modules)
        parts.append(rf".*visual\.(blocks\.\d+|merger)\..*({'|'.join(vnames)})")
    return "|".join(f"(?:{p})" for p in parts)


def lora_target_names(model, lora) -> list[str]:
    """Dotted names of the linear layers of ``model`` (before LoRA is attached; bitsandbytes' 4-bit linears
    included) that :func:`lora_target_regex` selects."""
    import re

    pattern = re.compile(lora_target_regex(lora))
    return sorted(name for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name))


def adapted_module_names(model) -> list[str]:
    """Dotted names (as in the base model) of the modules that carry a LoRA adapter in a PEFT ``model``."""
    names = set()
    for name, m in model.named_modules():
        if hasattr(m, "lora_A") and hasattr(m, "base_layer"):
            names.add(name.removeprefix("base_model.model."))
    return sorted(names)


def hf_lora_config(params):
    """The ``peft.LoraConfig`` of the hf backend."""
    from peft import LoraConfig

    lora = params.sft.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none",
                      target_modules=lora_target_regex(lora), task_type="CAUSAL_LM",
                      modules_to_save=modules_to_save(params) or None)


def unsloth_peft_kwargs(params) -> dict:
    """The arguments of the unsloth backend's ``FastVisionModel.get_peft_model``: the same targets, rank,
    alpha, dropout and ``modules_to_save`` as :func:`hf_lora_config`. Its finetune_* switches stay on: with a
    string ``target_modules`` they would only route it through Unsloth's own layer filter (unsloth
    2026.10), which is what picked other modules than the hf backend (the vision merger's MLP)."""
    lora = params.sft.lora
    return dict(target_modules=lora_target_regex(lora), finetune_vision_layers=True, finetune_language_layers=True,
                finetune_attention_modules=True, finetune_mlp_modules=True, r=lora.r, lora_alpha=lora.alpha,
                lora_dropout=lora.dropout, bias="none", random_state=params.seed,
                modules_to_save=modules_to_save(params) or None)


def prepare_kbit_model(model, gradient_checkpointing: bool = True):
    """Make a 4-bit model ready for LoRA training, casting only what must be float32.

    PEFT's ``prepare_model_for_kbit_training`` upcasts *every* weight that is not quantized to float32: the
    embeddings, the output head and (left unquantized) the vision tower, over 2 GB more for Qwen2.5-VL-7B,
    which is not QLoRA's memory. Here the frozen weights stay in their 16-bit dtype; only the normalisation
    layers' weights become float32 (they are tiny, and Qwen's RMSNorm computes in float32 anyway). The LoRA
    weights are float32 as PEFT creates them (``autocast_adapter_dtype``), and the Trainer's bf16/fp16
    autocast runs the matmuls in 16 bit. With ``gradient_checkpointing`` the inputs of the first layer
    require gradients, so checkpointed blocks still pass gradients back to the adapters.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if "norm" in type(module).__name__.lower():
            for p in module.parameters(recurse=False):
                if p.is_floating_point() and p.dtype != torch.float32:
                    p.data = p.data.float()
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def modules_to_save(params) -> list[str]:
    """Modules trained in full beside the LoRA adapter (``sft.lora.modules_to_save``).

    Default: none for a real model; the embeddings and output head for the tiny stand-in, whose
    locally trained vocabulary holds ICT tokens that its short general pre-training never produced (a
    real base model has seen every token of its vocabulary), so LoRA alone cannot make it emit them.
    """
    value = getattr(params.sft.lora, "modules_to_save", None)
    if value is None:
        return ["embed_tokens", "lm_head"] if params.model.kind == "tiny" else []
    return list(value)


def train_dtype(params) -> torch.dtype:
    return torch.bfloat16 if cuda_available() and params.sft.bf16 else torch.float32


def load_hf(params, model_path: Path, adapter_path: Path | None):
    """transformers + PEFT: the model at ``model_path`` with a fresh LoRA adapter, or with the adapter at
    ``adapter_path`` loaded trainable (``continue_from: adapter``)."""
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText, set_seed

    # LoRA's A matrices are drawn from the global RNG: seed it here, not only later in the Trainer, so the
    # adapter's initial weights depend on params.seed alone.
    set_seed(params.seed)
    check_model_folder(model_path)
    if adapter_path is not None:
        check_adapter_folder(adapter_path)
    kwargs = {"dtype": train_dtype(params), "use_safetensors": True}
    quantized = params.sft.load_in_4bit and cuda_available()
    if params.sft.load_in_4bit and not cuda_available():
        log.warning("sft.load_in_4bit needs CUDA (bitsandbytes); training in float32 on CPU instead")
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if params.sft.bf16 else torch.float16)
        # Each DDP rank holds its own full copy of the quantized model on its own GPU.
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForImageTextToText.from_pretrained(str(model_path), **kwargs)
    use_matmul_patch_embed(model)
    if quantized:
        model = prepare_kbit_model(model, gradient_checkpointing=True)
    if adapter_path is not None:
        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=True)
    else:
        model = get_peft_model(model, hf_lora_config(params))
    return model, load_processor(model_path, params.model)


def load_unsloth(params, model_path: Path, adapter_path: Path | None):
    """Unsloth's FastVisionModel with 4-bit QLoRA, or 16-bit LoRA without ``sft.load_in_4bit`` (its
    Qwen2.5-VL notebook's call sequence; arguments as in unsloth 2026.10)."""
    resolve_backend("unsloth")  # fails at once, naming the hf backend, without CUDA or unsloth
    check_model_folder(model_path)
    if adapter_path is not None:
        check_adapter_folder(adapter_path)
    from unsloth import FastVisionModel  # noqa: PLC0415 (lazy: it needs CUDA at import time)

    s = params.sft
    # An adapter folder loads as its base model plus that adapter (adapter_config.json names the base).
    source = adapter_path if adapter_path is not None else model_path
    model, _processor = FastVisionModel.from_pretrained(
        str(source), max_seq_length=s.max_length, dtype=torch.bfloat16 if s.bf16 else None,
        load_in_4bit=s.load_in_4bit, load_in_16bit=not s.load_in_4bit, use_gradient_checkpointing="unsloth",
        random_state=params.seed)
    if adapter_path is None:
        model = FastVisionModel.get_peft_model(model, **unsloth_peft_kwargs(params))
    FastVisionModel.for_training(model)
    # The processor comes from the model folder itself, at the run's image size, so both backends
    # tokenize identically.
    return model, load_processor(model_path, params.model)


BACKENDS = {"hf": load_hf, "unsloth": load_unsloth}

# Qwen's chat markers: Unsloth's collator keeps the loss on what follows the response marker, up to the
# next instruction marker.
_QWEN_INSTRUCTION, _QWEN_RESPONSE = "<|im_start|>user\n", "<|im_start|>assistant\n"


def resolve_collator(name: str) -> str:
    """``sft.collator`` checked: ``unsloth`` needs the unsloth package (not a GPU: its collator also runs
    on a CPU)."""
    if name == "unsloth" and not unsloth_importable():
        raise BackendUnavailable(
            "sft.collator is 'unsloth' but the unsloth package is not installed: pip install -e .[gpu], "
            "or set sft.collator: dicrepro.")
    return name


def make_collator(params, model, processor):
    """The data collator that ``sft.collator`` names, for ``model`` and its ``processor``."""
    if params.sft.collator == "unsloth":
        return unsloth_collator(model, processor, params.sft.max_length)
    return VisionSFTCollator(processor, params.sft.max_length, cache_mb=params.sft.cache_mb)


def unsloth_collator(model, processor, max_length: int):
    """Unsloth's ``UnslothVisionDataCollator`` over dicrepro rows (``image``, ``prompt``, ``target``).

    Each row becomes the chat of :func:`dicrepro.train.collate.chat_messages` with its image inline, and the
    loss is on the assistant's turn only (``train_on_responses_only`` with Qwen's chat markers). Images are
    not shrunk to a fixed size (``resize="max"``); Unsloth still rounds each side to a multiple of 28
    pixels before the processor applies ``model.min_pixels``/``max_pixels``.
    """
    resolve_collator("unsloth")
    import unsloth  # noqa: F401, PLC0415 (unsloth_zoo refuses to be imported before unsloth)
    from unsloth_zoo.vision_utils import UnslothVisionDataCollator  # noqa: PLC0415

    # The zoo's class is the collator on every device: unsloth.trainer's subclass only adds checks of
    # video files, and on a CPU unsloth.trainer exports a stub that refuses vision models.
    return UnslothVisionDataCollator(
        model, processor, max_seq_length=max_length, resize="max", formatting_func=_unsloth_example,
        train_on_responses_only=True, instruction_part=_QWEN_INSTRUCTION, response_part=_QWEN_RESPONSE)


def _unsloth_example(row: dict) -> dict:
    messages = chat_messages(row["prompt"], row["target"])
    messages[0]["content"][0] = {"type": "image", "image": rgb(row["image"])}
    return {"messages": messages}


def merge_adapter(params, base_path: Path, adapter_dir: Path, out_dir: Path) -> None:
    """Merge ``adapter_dir`` into a fresh (unquantized) copy of ``base_path`` and save it with the
    processor: a plain checkpoint that AutoModelForImageTextToText loads without PEFT."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    check_model_folder(base_path)
    check_adapter_folder(adapter_dir)
    dtype = torch.bfloat16 if params.sft.bf16 and cuda_available() else torch.float32
    base = AutoModelForImageTextToText.from_pretrained(str(base_path), dtype=dtype, use_safetensors=True)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    # The merged folder carries the run's image size, so evaluating it needs no params.
    load_processor(base_path, params.model).save_pretrained(str(out_dir))
