"""The typed schema of a params YAML file (params/tiny.yaml, params/paper.yaml, your own).

Validation happens before any work starts: an unknown key, a wrong type or a missing path fails with
the key's dotted name in the message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_serializer,
                      model_validator)

from dicrepro.paths import resolve
from dicrepro.safe_yaml import YamlError, load_yaml

DiagramType = Literal[
    "flowchart", "sequence", "state", "class", "er", "gantt", "pie", "mindmap", "timeline",
    "block", "architecture", "xychart", "quadrant", "requirement", "packet",
]


class _Strict(BaseModel):
    # allow_inf_nan=False: `scale: .inf` or a NaN weight would pass every range check and fail later
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, allow_inf_nan=False)
    # Fields added after runs were made: left out of the dump while at their defaults, so the step
    # signatures and base recipes of those runs (made from dumps without them) stay up to date.
    _omit_at_default: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        out = handler(self)
        for key in self._omit_at_default:
            if getattr(self, key) == type(self).model_fields[key].default:
                out.pop(key, None)
        return out

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v, info):
        # pydantic reads `n: true` as 1; YAML's yes/no/true/false are never meant as numbers
        if isinstance(v, bool):
            ann = cls.model_fields[info.field_name].annotation
            if ann is not bool and bool not in getattr(ann, "__args__", ()):
                raise ValueError(f"expected {getattr(ann, '__name__', ann)}, got {str(v).lower()}")
        return v


def check_languages(v: dict[str, float]) -> dict[str, float]:
    """Language weights: known languages (en, zh), none negative, at least one positive."""
    bad = sorted(set(v) - {"en", "zh"})
    if bad:
        raise ValueError(f"unknown language(s) {bad}; supported: en, zh")
    negative = sorted(k for k, w in v.items() if w < 0)
    if negative:
        raise ValueError(f"negative weight for {negative}; weights are >= 0")
    if not v or sum(v.values()) <= 0:
        raise ValueError("languages needs at least one positive weight")
    return v


class TinyModelParams(_Strict):
    """Size of the embedded tiny Qwen2.5-VL-architecture stand-in (random init, local tokenizer)."""

    vocab_size: int = Field(2048, ge=300)
    hidden_size: int = Field(128, ge=16)
    intermediate_size: int = Field(256, ge=16)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    vision_depth: int = Field(2, ge=1)
    vision_hidden_size: int = Field(64, ge=16)
    vision_heads: int = Field(4, ge=1)
    # Pre-training on general (non-ICT) diagrams makes the base a "general model" baseline.
    pretrain_samples: int = Field(200, ge=0)
    pretrain_epochs: float = Field(3.0, gt=0)
    pretrain_lr: float = Field(2e-3, gt=0)
    # Vision-first warm-up (dicrepro.train.vision_warmup): before any text, the vision tower learns to tell
    # the pre-training diagrams' types apart (each also once in a document look per copy); 0 epochs skips it.
    vision_warmup_epochs: int = Field(20, ge=0)
    vision_warmup_lr: float = Field(3e-3, gt=0)
    vision_warmup_copies: int = Field(1, ge=0)
    # Weight of a second warm-up loss: the type from every image token on its own, besides their mean (the
    # language model attends to tokens, it does not average them; params/tiny.yaml: 1.0). 0 turns it off.
    vision_warmup_token_loss: float = Field(0.0, ge=0)
    # Augmentation in the warm-up, drawn anew each epoch: each image flipped left-right and upside-down, each
    # at even odds (a flipped diagram is the same kind of diagram), and this share of its merged-token
    # squares (28x28 pixels) blanked to the processor's mean (white paper for the tiny model). Without them
    # the tower fitted 99.6% of its rows and told the type of 78% of the ICT diagrams by a linear probe; with
    # both, 89% (README "The tiny stand-in's recipe", point 2). params/tiny.yaml: true and 0.25.
    vision_warmup_flips: bool = False
    vision_warmup_erase: float = Field(0.0, ge=0, lt=1)
    # General diagrams rendered for the warm-up (and the type-reading phase); 0 means pretrain_samples. The
    # first pretrain_samples of them also serve the text pre-training. 300 diagrams were too few: the
    # warmed-up tower told apart 63% of the ICT diagrams' types; 1,200 at fewer epochs, 80% (issue 19).
    vision_warmup_samples: int = Field(0, ge=0)
    # Keep the warmed-up vision tower fixed while the language model learns to read it (type reading, text
    # pre-training): trained along at the text's learning rate, it lost what it had learnt (linear-probe type
    # accuracy on the stand-in's document pages fell from 80% after the warm-up to 45% in the saved base).
    freeze_vision_after_warmup: bool = True
    # "What kind of diagram is this?" (answer: its type): a short type-reading phase over every warm-up
    # diagram before the text pre-training, and one such row per pre-training diagram in it.
    type_questions: bool = True
    # Epochs of that type-reading phase (over every warm-up diagram and its document-look copies). 3 over
    # 1,200 diagrams and copies; with 2,400 diagrams, 1.5 reads as many rows in the same time (recipe 14, a
    # trial not taken: README "Issue 19's bar").
    type_reading_epochs: float = Field(3.0, gt=0)
    # Languages of the general pre-training diagrams (their labels, descriptions and type questions) and so
    # of the tokenizer's corpus; null: stage1.languages. The real base (Qwen2.5-VL) is bilingual; half in
    # Chinese (a trial, README "The tiny stand-in's recipe", point 5) the tiny base read Chinese captions
    # better at one seed and worse at another.
    pretrain_languages: dict[str, float] | None = None
    # Full attention in every vision block; false: windowed (112 px) in all but the last, as in the 7B model
    # (full attention in 4 of its 32 blocks). A tower of 2 blocks sees a whole page's layout only in one.
    vision_full_attention: bool = False
    # Share of the tokenizer corpus's Chinese character occurrences whose characters each get one token (the
    # most frequent first; SentencePiece's character_coverage); 0: the BPE alone decides, and at 2,048 tokens
    # it spelt 饼, 框, 甘 and 思 in bytes (dicrepro.train.tiny_tokenizer.train_tokenizer).
    cjk_coverage: float = Field(0.0, ge=0, le=1)
    _omit_at_default = ("pretrain_languages", "vision_full_attention", "cjk_coverage", "type_reading_epochs",
                        "vision_warmup_flips", "vision_warmup_erase")

    @field_validator("pretrain_languages")
    @classmethod
    def _pretrain_languages(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        return None if v is None else check_languages(v)

    @model_validator(mode="after")
    def _heads_fit(self) -> TinyModelParams:
        # What the model config would reject only when the base is built, minutes into a run
        h, a, kv = self.hidden_size, self.num_attention_heads, self.num_key_value_heads
        if h % a or a % kv or (h // a) % 2:
            raise ValueError(f"hidden_size ({h}) must be divisible by num_attention_heads ({a}) into an even "
                             f"head size, and num_attention_heads by num_key_value_heads ({kv})")
        if self.vision_hidden_size % self.vision_heads or (self.vision_hidden_size // self.vision_heads) % 4:
            raise ValueError(f"vision_hidden_size ({self.vision_hidden_size}) / vision_heads ({self.vision_heads}) "
                             "must be a whole multiple of 4")
        return self


class ModelParams(_Strict):
    kind: Literal["tiny", "local"] = "tiny"
    path: Path | None = None  # local folder with real weights (kind=local), e.g. Qwen2.5-VL-7B-Instruct
    tiny: TinyModelParams = TinyModelParams()
    # Caps the processor's image size: the main lever on memory and speed (and on image tokens).
    min_pixels: int = Field(3136, ge=784)
    max_pixels: int = Field(50176, ge=3136)

    @model_validator(mode="after")
    def _local_needs_path(self, info: ValidationInfo) -> ModelParams:
        # Commands that need no model (synth, render, metrics, status) validate without it.
        if self.kind == "local" and (info.context or {}).get("need_model", True):
            if self.path is None:
                raise ValueError("model.path is required when model.kind is 'local'")
            if not Path(self.path).expanduser().exists():
                raise ValueError(f"model.path does not exist: {self.path}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"model.min_pixels ({self.min_pixels}) is larger than model.max_pixels "
                             f"({self.max_pixels})")
        return self


class RenderParams(_Strict):
    workers: int = Field(2, ge=1)
    timeout_s: float = Field(20.0, gt=0)
    width: int = Field(800, ge=200)
    scale: float = Field(1.0, gt=0)
    themes: list[str] = ["default", "neutral", "forest", "base", "dark"]


class RealismParams(_Strict):
    """Knobs that make synthesized diagrams as rich as hand-written ICT docs (../shared/REALISM.md, measured
    by ``dicrepro realism``). Every default keeps the plain synthesizer; params/paper.yaml turns them on."""

    # Draw weights of stage1.diagram_types ({} = every listed type equally); a listed type not named here
    # gets other_types_weight.
    type_weights: dict[DiagramType, float] = {}
    other_types_weight: float = Field(0.0, ge=0)
    # sequence: share of diagrams with alt/opt/loop/par blocks, with a block nested in another, with
    # notes, with activations, with self-messages; autonumber share (null: the sampler's own draw)
    block_p: float = Field(0.0, ge=0, le=1)
    nested_block_p: float = Field(0.0, ge=0, le=1)
    note_p: float = Field(0.0, ge=0, le=1)
    activation_p: float = Field(0.0, ge=0, le=1)
    self_message_p: float = Field(0.0, ge=0, le=1)
    autonumber_p: float | None = Field(None, ge=0, le=1)
    # flowchart: share with subgraphs, with a subgraph nested in another, with classDef styling
    subgraph_p: float = Field(0.0, ge=0, le=1)
    nested_subgraph_p: float = Field(0.0, ge=0, le=1)
    class_def_p: float = Field(0.0, ge=0, le=1)
    # flowchart/sequence: share of diagrams whose long labels are written over two lines (<br/>)
    line_break_p: float = Field(0.0, ge=0, le=1)
    # labels: share of diagrams that name participants/steps in their long form (full names, qualifiers)
    long_label_p: float = Field(0.0, ge=0, le=1)
    # state: share of diagrams with a composite state; share that keep the [*] start (null: all)
    composite_state_p: float = Field(0.0, ge=0, le=1)
    state_start_p: float | None = Field(None, ge=0, le=1)
    # flowchart: share that keep their decisions (null: all); the others are the steps in a row
    decision_p: float | None = Field(None, ge=0, le=1)
    # per-type [min, max] elements, over stage1.min_elements/max_elements (e.g. sequence: [6, 24])
    element_ranges: dict[DiagramType, tuple[int, int]] = {}

    @field_validator("element_ranges")
    @classmethod
    def _ranges(cls, v: dict) -> dict:
        bad = {k: r for k, r in v.items() if not 2 <= r[0] <= r[1]}
        if bad:
            raise ValueError(f"element_ranges need 2 <= min <= max, got {bad}")
        return v

    @property
    def active(self) -> bool:
        return self != RealismParams()


class Stage1Params(_Strict):
    n: int = Field(300, ge=1)
    test_n: int = Field(40, ge=0)
    diagram_types: list[DiagramType] = Field(["flowchart", "sequence", "state", "class", "er", "gantt", "pie",
                                              "mindmap", "timeline", "block"], min_length=1)
    languages: dict[str, float] = {"en": 0.8, "zh": 0.2}
    min_elements: int = Field(3, ge=2)
    max_elements: int = Field(12, ge=2)
    # null: the plain synthesizer (and a params dump without this key, so older runs stay up to date)
    realism: RealismParams | None = None
    _omit_at_default = ("realism",)

    @model_validator(mode="after")
    def _elements_range(self) -> Stage1Params:
        if self.min_elements > self.max_elements:
            raise ValueError(f"min_elements ({self.min_elements}) is larger than max_elements "
                             f"({self.max_elements})")
        return self

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, v: dict[str, float]) -> dict[str, float]:
        return check_languages(v)


class Stage2Params(_Strict):
    # Expert annotations: a JSONL/CSV file, a folder of image+txt pairs or a Label Studio export.
    # null -> the clearly labelled stand-in is generated instead.
    annotations: Path | None = None
    n: int = Field(100, ge=1)  # size of the stand-in
    test_n: int = Field(20, ge=0)

    @field_validator("annotations")
    @classmethod
    def _exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).expanduser().exists():
            raise ValueError(f"annotations path does not exist: {v}")
        return v


class Stage3Params(_Strict):
    n_diagrams: int = Field(60, ge=1)
    questions_per_diagram: int = Field(4, ge=1)
    test_diagrams: int = Field(20, ge=0)
    # Reword training questions with describe.backend (openai/hf); kept only where the paraphrase check
    # passes (labels, order, numbers, negation, language) and the answer key is untouched.
    paraphrase: bool = False
    # Add "write this diagram as Mermaid" per diagram (target: its Mermaid source); evaluation then reports
    # parse rate and node/edge/triple F1 (structure_scores.csv). Off: the stage-3 data stays byte-identical.
    mermaid_task: bool = False
    # Share of the VQA diagrams drawn in the stage-2 stand-in's document look (page context, scan noise,
    # JPEG) instead of as clean renders: the paper's VQA items are about the experts' real domain images,
    # not only about stage 1's renders. 0 keeps the stage-3 images byte-identical to earlier runs.
    document_share: float = Field(0.0, ge=0.0, le=1.0)
    # Training diagrams also asked "What kind of diagram is this?" in each of these languages besides their
    # own (dicrepro.data.vqa.type_item); the test set is left as generated. params/tiny.yaml: [en, zh].
    type_question_languages: list[Literal["en", "zh"]] = []
    # Every training type question asked again of a document-look copy of its diagram (page context, scan
    # noise, JPEG: dicrepro.data.vqa.document_type_rows); the other questions and the test set are unchanged.
    # With document_share > 0 the diagrams already drawn so get a page around their page.
    document_type_questions: bool = False
    _omit_at_default = ("document_share", "type_question_languages", "document_type_questions")

    @field_validator("type_question_languages")
    @classmethod
    def _each_language_once(cls, v: list[str]) -> list[str]:
        # [zh, zh] would ask the same question twice under one id; [zh, en] is the same data as [en, zh]
        return sorted(set(v))


class DescribeParams(_Strict):
    backend: Literal["verbalizer", "openai", "hf"] = "verbalizer"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    hf_path: Path | None = None
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # A text the faithfulness gate rejects is retried this often (with the gate's reasons fed back),
    # then replaced by the verbalizer's.
    gate_retries: int = Field(1, ge=0)
    prompt: str = "rewrite_v1"  # template file dicrepro/prompts/<prompt>.txt
    hf_max_new_tokens: int = Field(1536, ge=16)


class AuthorParams(_Strict):
    """``dicrepro author``: an OpenAI-compatible chat endpoint writes Mermaid for ICT text passages."""

    base_url: str | None = None   # e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)
    prompt: str = "author_v1"  # dicrepro/text/prompts/<prompt>.txt, or a .txt path
    diagram_types: list[DiagramType] = Field(["flowchart", "sequence", "state"], min_length=1)
    max_chars: int = Field(4000, ge=200)  # passages are split at blank lines into chunks of at most this


class LoraParams(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    finetune_vision_layers: bool = False
    # Trained in full beside the adapter. null: [embed_tokens, lm_head] for the tiny model (its locally
    # trained tokenizer has ICT tokens the general pre-training never produced, which LoRA alone cannot
    # teach it to emit) and [] for real weights.
    modules_to_save: list[str] | None = None


class StageTrainParams(_Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    learning_rate: float = Field(2e-4, gt=0)


class SFTParams(_Strict):
    backend: Literal["auto", "hf", "unsloth"] = "auto"
    # dicrepro: dicrepro.train.collate.VisionSFTCollator under every backend, so both see identical inputs.
    # unsloth: Unsloth's UnslothVisionDataCollator (with train_on_responses_only), as in Unsloth's own
    # notebooks; it learns the same tokens but pre-resizes images its own way (docs/training.md).
    collator: Literal["dicrepro", "unsloth"] = "dicrepro"
    load_in_4bit: bool = False
    # merged: each stage starts from the previous stage's merged weights with a fresh adapter;
    # adapter: the previous stage's adapter is loaded and trained further.
    continue_from: Literal["merged", "adapter"] = "merged"
    lora: LoraParams = LoraParams()
    stage1: StageTrainParams = StageTrainParams()
    stage2: StageTrainParams = StageTrainParams()
    stage3: StageTrainParams = StageTrainParams()
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=64)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(5, ge=1)
    resume: bool = True
    # Share of earlier stages' rows replayed in stages 2 and 3 (against forgetting: without it the tiny
    # stage-3 model answers every caption prompt like a quiz). null: 0.3 for tiny, 0.0 for real weights.
    replay: float | None = Field(None, ge=0, le=1)
    bf16: bool = False
    # Batches of rows of similar length (the Trainer's length-grouped sampler, still shuffled): a batch is
    # padded to its longest row, and a short VQA answer batched with a long caption or Mermaid source is
    # mostly padding.
    group_by_length: bool = True
    # MiB of row encodings (tokens, labels, pixel values) dicrepro's collator keeps from one epoch to the
    # next, so an image is decoded and processed once, not every epoch (the same batches; 0: off).
    # Decides nothing about the weights: not part of a stage's params hash.
    cache_mb: int = Field(4096, ge=0)

    _omit_at_default = ("cache_mb",)

    def stage(self, k: int) -> StageTrainParams:
        return {1: self.stage1, 2: self.stage2, 3: self.stage3}[k]


class BaselineModel(_Strict):
    name: str
    path: Path

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path) -> Path:
        if not Path(v).expanduser().exists():
            raise ValueError(f"baseline model path does not exist: {v}")
        return v


class JudgeParams(_Strict):
    """An OpenAI-compatible LLM that grades captions against the diagram's Mermaid source
    (dicrepro.evaluate.judge); off unless ``enabled``."""

    enabled: bool = False
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> JudgeParams:
        if self.enabled and not (self.base_url and self.model):
            raise ValueError("eval.judge.enabled needs eval.judge.base_url and eval.judge.model")
        return self


class EvalParams(_Strict):
    # fields added after runs were made: left out of the dump at their default, so those runs stay current
    _omit_at_default = ("num_beams",)

    models: list[str] = ["base", "stage1", "stage2", "stage3"]
    baselines: list[BaselineModel] = []
    ocr_baseline: bool = False
    max_new_tokens: int = Field(160, ge=1)
    # Replies to objective questions (a letter, True/False or a number, as each question asks): generation
    # stops here. A model not yet trained on questions answers with a whole caption, and a batch runs until its
    # longest reply ends: at max_new_tokens that was half of the tiny profile's evaluation time.
    objective_max_new_tokens: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    # Decoding of every reply the models give in evaluation (captions, objective answers, the blind runs):
    # 1 is greedy; n > 1 keeps the n most likely partial replies at each token (beam search) and returns the
    # likeliest whole one. Deterministic either way; costs about n times the generation compute.
    num_beams: int = Field(1, ge=1)
    gallery_n: int = Field(6, ge=0)
    # Blind baselines (dicrepro.evaluate.blind): every model is evaluated again with blank images and with
    # images shuffled between diagrams; the tables show each score with the image, blind and the gain.
    # [] skips them (and the gain columns).
    blind: list[Literal["blank", "shuffled"]] = ["blank", "shuffled"]
    # A held-out real test set (`dicrepro harvest DOCS --split test --out FOLDER`): every model captions it
    # too, scored against each diagram's graph (faithfulness; real_* in confidence.csv) and, where a row has
    # a reference text, by the caption metrics (caption_scores_real.csv). None: no real test set.
    real_test: Path | None = None
    judge: JudgeParams = JudgeParams()


class Params(_Strict):
    """Every knob of a run. `load_params` reads and validates one from YAML."""

    name: str = "tiny"
    seed: int = 1234
    run_dir: Path = Path("runs/tiny")
    figures_dir: Path = Path("figures")
    model: ModelParams = ModelParams()
    render: RenderParams = RenderParams()
    stage1: Stage1Params = Stage1Params()
    stage2: Stage2Params = Stage2Params()
    stage3: Stage3Params = Stage3Params()
    describe: DescribeParams = DescribeParams()
    author: AuthorParams = AuthorParams()
    sft: SFTParams = SFTParams()
    eval: EvalParams = EvalParams()

    @field_validator("run_dir", "figures_dir", mode="before")
    @classmethod
    def _not_empty(cls, v):
        # '' would mean the current folder: a run would write (and replace) files all over it
        if v is None or not str(v).strip():
            raise ValueError("must be a folder path, not empty")
        return v


class ParamsError(ValueError):
    """A params file is unreadable or invalid; the message names the file and every bad key."""


def _format_errors(path: Path | str, err: ValidationError) -> str:
    lines = [f"invalid params file {path}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def _expand_env(node, key: str = ""):
    """Expand ``$VAR``/``${VAR}`` and ``~`` in string values; an unset variable is an error naming the key."""
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{key}.{i}") for i, v in enumerate(node)]
    if isinstance(node, str) and ("$" in node or node.startswith("~")):
        out = os.path.expanduser(os.path.expandvars(node))
        if "$" in out:
            raise ParamsError(f"{key}: environment variable in {node!r} is not set")
        return out
    return node


def load_params(path: str | Path, overrides: dict | None = None, *, need_model: bool = True) -> Params:
    """Read a params YAML, apply optional dotted-key ``overrides`` and validate everything.

    ``need_model=False`` is for commands that use no model (synth, render, status): a local
    ``model.path`` may then be unset or absent (``params/paper.yaml`` without ``DICREPRO_BASE_MODEL``).

    ``path`` and the relative paths inside the file (run_dir, figures_dir, model.path, ...) are taken
    from the project root (:func:`dicrepro.paths.repo_root`: ``$DICREPRO_ROOT``, the checkout, or for an
    installed wheel the working directory), so a notebook run from ``notebooks/`` in JupyterLab, papermill
    and the shell all read and write the same files.
    """
    path = resolve(path)
    try:
        raw = load_yaml(path) or {}
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except YamlError as e:
        raise ParamsError(f"params file {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"params file {path} must hold a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    model = raw.get("model")
    if not need_model and isinstance(model, dict) and isinstance(model.get("path"), str):
        if "$" in os.path.expandvars(model["path"]):
            model["path"] = None  # an unset $DICREPRO_BASE_MODEL is fine where no model is used
    try:
        raw = _expand_env(raw)
    except ParamsError as e:
        raise ParamsError(f"invalid params file {path}:\n  {e}") from None
    _root_paths(raw)
    try:
        params = Params.model_validate(raw, context={"need_model": need_model})
    except ValidationError as e:
        raise ParamsError(_format_errors(path, e)) from None
    # The defaults too (a file without run_dir runs in <root>/runs/tiny)
    params.run_dir, params.figures_dir = resolve(params.run_dir), resolve(params.figures_dir)
    return params


# Dotted keys holding paths; "*" stands for every item of a list.
PATH_KEYS = ("run_dir", "figures_dir", "model.path", "stage2.annotations", "describe.hf_path",
             "eval.baselines.*.path")


def _root_paths(raw: dict) -> None:
    """Make the relative paths of a raw params mapping absolute under the project root (in place),
    before validation checks that they exist."""
    def visit(node, keys: list[str]) -> None:
        head, rest = keys[0], keys[1:]
        items = list(enumerate(node)) if head == "*" and isinstance(node, list) else (
            [(head, node[head])] if isinstance(node, dict) and head in node else [])
        for k, v in items:
            if rest:
                visit(v, rest)
            elif isinstance(v, (str, Path)) and str(v).strip():  # '' and '  ' are refused by validation
                node[k] = str(resolve(v))

    for dotted in PATH_KEYS:
        visit(raw, dotted.split("."))


def dump_params(params: Params) -> dict:
    """Params as plain JSON-able data (for manifests and model cards)."""
    return params.model_dump(mode="json")
