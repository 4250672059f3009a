"""The "traditional method" baseline of the paper's introduction: OCR reads the text in the image and
that text is scored as if it were a caption. Tesseract from Debian (tesseract-ocr)."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from pathlib import Path

from dicrepro.progress import tqdm

from dicrepro.atomic import append_jsonl, read_jsonl

log = logging.getLogger(__name__)


def tesseract_languages() -> list[str]:
    exe = shutil.which("tesseract")
    if exe is None:
        raise FileNotFoundError("tesseract is not installed: `make setup` installs Debian's tesseract-ocr")
    out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines()[1:] if line.strip()]


def ocr_image(png: bytes, languages: str = "eng") -> str:
    """Text Tesseract reads in one image, whitespace-normalised."""
    proc = subprocess.run(["tesseract", "stdin", "stdout", "-l", languages], input=png,
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tesseract failed: {proc.stderr.decode(errors='replace').strip()}")
    return " ".join(proc.stdout.decode("utf-8", errors="replace").split())


def ocr_to_jsonl(ds, out_path: Path, *, model_name: str = "ocr") -> Path:
    """OCR every row of ``ds`` into prediction lines, skipping ids already in ``out_path``."""
    langs = tesseract_languages()
    lang = "+".join(x for x in ("eng", "chi_sim") if x in langs) or "eng"
    done = {r["id"] for r in read_jsonl(out_path)} if Path(out_path).exists() else set()
    for row in tqdm(ds, desc="tesseract OCR", unit="image"):
        if row["id"] in done:
            continue
        buf = io.BytesIO()
        row["image"].convert("RGB").save(buf, format="PNG")
        append_jsonl(out_path, {"model": model_name, "id": row["id"], "prompt": "(ocr)",
                                "text": ocr_image(buf.getvalue(), lang)})
    return Path(out_path)
