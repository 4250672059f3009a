"""``dicrepro caption``: caption a user's own figures with a trained model, into JSONL for a RAG index.

Each output line is one figure::

    {"id", "source", "kind", "page", "bbox", "line", "image_sha256", "caption", "model", "model_hash",
     "adapter_hash", "prompt", "max_new_tokens", "num_beams", "created",
     "page_content": caption, "metadata": {source, page, bbox, kind, image_sha256, model, model_hash, ...}}

``page_content`` + a flat ``metadata`` is the shape LangChain's and LlamaIndex's JSONL loaders take as
is. Lines are appended batch by batch (a crash loses at most one batch) and ids already in the output are
skipped, so a killed run resumes where it stopped; ``--format md`` also writes a Markdown page from it.
Greedy decoding, or beam search with ``--num-beams``, batched with left padding (batched and one-by-one
output are the same).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from dicrepro.atomic import append_jsonl, read_jsonl, write_text_atomic
from dicrepro.caption.figures import Figure, Problem, find_figures
from dicrepro.manifest import folder_identity
from dicrepro.text.describe import caption_prompt

log = logging.getLogger(__name__)

BACKENDS = ("transformers", "vllm")


@dataclass
class CaptionReport:
    """What a caption run did: new and already-present rows, and the inputs that gave no figure."""

    out: Path
    captioned: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.captioned} figure(s) captioned, {self.skipped} already in {self.out}, "
                f"{len(self.problems)} problem(s)")


def resolve_model(model_dir: str | Path) -> tuple[Path, Path | None]:
    """``(weights folder, adapter folder or None)``: a dicrepro stage folder (``models/stageK``) is used
    through its ``merged/`` weights and records its ``adapter/``; any other folder is a plain model."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    if (model_dir / "merged" / "config.json").is_file():
        adapter = model_dir / "adapter"
        return model_dir / "merged", adapter if adapter.is_dir() else None
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder: no config.json (nor merged/config.json)")
    if not any(model_dir.glob("*.safetensors")):
        raise FileNotFoundError(f"{model_dir} has no *.safetensors weights")
    return model_dir, None


def _row(fig: Figure, caption: str, model: dict, prompt: str, max_new_tokens: int, num_beams: int) -> dict:
    meta = {"source": fig.source, "kind": fig.kind, "page": fig.page, "bbox": list(fig.bbox) if fig.bbox else None,
            "line": fig.line, "image_sha256": fig.sha256, **model}
    return {"id": fig.id, "source": fig.source, "kind": fig.kind, "page": fig.page,
            "bbox": list(fig.bbox) if fig.bbox else None, "line": fig.line, "image_sha256": fig.sha256,
            "caption": caption, **model, "prompt": prompt, "max_new_tokens": max_new_tokens,
            "num_beams": num_beams,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "page_content": caption, "metadata": meta}


def _transformers_generator(weights: Path, model_params, batch_size: int, max_new_tokens: int, num_beams: int):
    from dicrepro.evaluate.predict import generate, load_for_inference

    model, processor = load_for_inference(weights, model_params)

    def run(rows: list[dict]) -> list[str]:
        return generate(weights, rows, batch_size=batch_size, max_new_tokens=max_new_tokens, model=model,
                        processor=processor, progress=False, num_beams=num_beams)
    return run


def _vllm_generator(weights: Path, model_params, batch_size: int, max_new_tokens: int, num_beams: int):
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise RuntimeError("--backend vllm needs vllm, which is not installed (it runs on a CUDA GPU: "
                           "pip install vllm); use --backend transformers") from None
    from dicrepro.train.collate import chat_messages, rgb
    from dicrepro.train.processor import load_processor

    processor = load_processor(weights, model_params)
    mm = {}
    if model_params is not None:
        mm = {"min_pixels": model_params.min_pixels, "max_pixels": model_params.max_pixels}
    llm = LLM(model=str(weights), limit_mm_per_prompt={"image": 1}, mm_processor_kwargs=mm or None,
              max_num_seqs=batch_size)
    sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def run(rows: list[dict]) -> list[str]:
        reqs = [{"prompt": processor.apply_chat_template(chat_messages(r["prompt"]), tokenize=False,
                                                         add_generation_prompt=True),
                 "multi_modal_data": {"image": rgb(r["image"])}} for r in rows]
        return [o.outputs[0].text.strip() for o in llm.generate(reqs, sampling, use_tqdm=False)]
    return run


def caption_inputs(inputs: list[str | Path], model_dir: str | Path, out: str | Path, *, model_params=None,
                   batch_size: int = 8, max_new_tokens: int = 512, limit: int | None = None,
                   language: str = "en", prompt: str | None = None, backend: str = "transformers",
                   fmt: str = "jsonl", num_beams: int = 1) -> CaptionReport:
    """Caption every figure found in ``inputs`` with the model in ``model_dir``, appending to ``out``.

    ``model_params`` (``params.model``) sets the image size range; ``limit`` caps how many figures this
    call captions (new ones only); ``prompt`` defaults to the captioning instruction the model was
    trained with in ``language``; ``num_beams`` > 1 decodes by beam search (transformers backend).
    Returns a :class:`CaptionReport`; unreadable inputs are in its ``problems`` and the rest is still
    captioned.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if batch_size < 1 or max_new_tokens < 1 or num_beams < 1 or (limit is not None and limit < 0):
        raise ValueError("batch_size, max_new_tokens and num_beams must be >= 1 and limit >= 0")
    if num_beams > 1 and backend == "vllm":
        raise ValueError("--num-beams > 1 needs --backend transformers (vllm's sampling here is greedy)")
    out = Path(out)
    if out.exists() and not out.is_file():
        raise IsADirectoryError(f"--out {out} is a folder; give a .jsonl file path")
    weights, adapter = resolve_model(model_dir)
    model = {"model": str(Path(model_dir).resolve()), "model_hash": folder_identity(weights),
             "adapter_hash": folder_identity(adapter) if adapter else None}
    prompt = prompt or caption_prompt(language)
    report = CaptionReport(out)
    earlier = read_jsonl(out) if out.exists() else []
    done = {r["id"] for r in earlier}
    other = [s for s in ((r.get("max_new_tokens"), r.get("num_beams", 1)) for r in earlier)
             if s != (max_new_tokens, num_beams)]
    if other:  # resuming keeps what is there: say so when it was decoded otherwise
        log.warning("%s: %d figure(s) there were captioned with other settings (max_new_tokens, num_beams) %s "
                    "than this call's (%d, %d); they are kept as they are (another --out captions them again)",
                    out, len(other), sorted(set(other), key=str), max_new_tokens, num_beams)
    generator = None
    renderer = None
    batch: list[Figure] = []
    bar = tqdm(desc="caption", unit="figure")

    def flush():
        nonlocal generator
        if not batch:
            return
        if generator is None:  # loading a 7B model takes a while: only when there is something to caption
            make = _vllm_generator if backend == "vllm" else _transformers_generator
            generator = make(weights, model_params, batch_size, max_new_tokens, num_beams)
        texts = generator([{"image": f.image(), "prompt": prompt} for f in batch])
        for f, text in zip(batch, texts):
            append_jsonl(out, _row(f, text, model, prompt, max_new_tokens, num_beams))
        report.captioned += len(batch)
        bar.update(len(batch))
        batch.clear()

    try:
        if any(Path(i).is_dir() or Path(i).suffix.lower() in (".md", ".markdown", ".mdx", ".mmd") for i in inputs):
            from dicrepro.diagrams.render import MermaidRenderer

            renderer = MermaidRenderer(workers=1).start()
        for fig in find_figures(inputs, renderer, report.problems):
            if fig.id in done:
                report.skipped += 1
                continue
            if limit is not None and report.captioned + len(batch) >= limit:
                break
            done.add(fig.id)
            batch.append(fig)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
        if renderer is not None:
            renderer.close()
    for p in report.problems:
        log.warning("%s", p)
    if fmt == "md":
        write_markdown(out, out.with_suffix(".md"))
    return report


def write_markdown(jsonl: str | Path, md: str | Path) -> Path:
    """A readable page of a caption JSONL: one section per figure with its provenance and caption."""
    lines = ["# Figure captions", ""]
    for r in read_jsonl(jsonl):
        where = r["source"] + (f", page {r['page']}" if r.get("page") else "") + (
            f", bbox {r['bbox']}" if r.get("bbox") else "") + (f", line {r['line']}" if r.get("line") else "")
        lines += [f"## {r['id']}", "", f"*{r['kind']}: {where}; sha256 {r['image_sha256'][:12]}; model "
                  f"{r['model_hash']}*", "", r["caption"], ""]
    return write_text_atomic(md, "\n".join(lines))
