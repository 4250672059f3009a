"""The SFT stages' trainer: TRL's ``SFTTrainer``, off CUDA with the output layer computed only where a
label is.

Why: TRL's fused LM head scores only the labelled positions on CUDA (its Triton path); on other devices it
projects every position through the output layer, image tokens and prompt included, where no loss is
taken. On the tiny profile's CPU that was an eighth of an SFT step (docs/benchmarks.md). Off CUDA the
stages therefore use :class:`LabelledLogitsSFTTrainer`, whose loss asks the model for the logits at the
labelled positions only (``logits_to_keep``): the same loss and gradients up to floating-point summation
order, and the same logged metrics (test). Imported only where training starts: importing trl takes
seconds.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from trl import SFTTrainer

from dicrepro.train.collate import labelled_positions, logits_mask_supported


def sft_trainer_class(device_type: str) -> type[SFTTrainer]:
    """The trainer class for the SFT stages on ``device_type`` (``"cuda"``, ``"cpu"``, ...): TRL's own on
    CUDA, and where this transformers cannot compute logits at masked positions only."""
    return SFTTrainer if device_type == "cuda" or not logits_mask_supported() else LabelledLogitsSFTTrainer


class LabelledLogitsSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss takes the model's logits at the labelled positions only.

    TRL's negative log-likelihood (summed over the labelled tokens, divided by ``num_items_in_batch`` or
    by their count) and its logged ``entropy``, ``mean_token_accuracy`` and ``num_tokens``. Options that
    need TRL's own loss (DFT, label smoothing, a ``compute_loss_func``, MoE aux loss, returned outputs)
    fall back to it, as do padding-free batches (no ``attention_mask``).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if (return_outputs or self.args.loss_type != "nll" or self.compute_loss_func is not None
                or self.label_smoother is not None or self.aux_loss_enabled or "attention_mask" not in inputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        keep, targets = labelled_positions(inputs["labels"])
        features = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**features, use_cache=False, logits_to_keep=keep).logits.float()
        targets = targets.to(logits.device)
        n = torch.as_tensor(targets.numel(), device=logits.device)
        loss = F.cross_entropy(logits, targets, reduction="sum") / (
            n.clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        with torch.no_grad():
            log_p = logits.log_softmax(-1)
            entropy = -(log_p.exp() * log_p).sum(-1).sum()
            right = (logits.argmax(-1) == targets).sum()
        self._log_metrics(mode, n, entropy, right, features)
        return loss

    def _log_metrics(self, mode: str, n, entropy, right, features: dict) -> None:
        # As SFTTrainer.compute_loss logs them, over the labelled tokens of every process
        gather = self.accelerator.gather_for_metrics
        num_valid, entropy_sum, num_right = gather(n).sum(), gather(entropy).sum(), gather(right).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((num_right / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(features["attention_mask"].sum()).sum().item() // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
