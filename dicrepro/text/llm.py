"""Text backends for rewriting descriptions: an OpenAI-compatible HTTP client, a local transformers LM, and
the offline verbalizer. A dict of functions, no class hierarchy:

    complete = BACKENDS[name](params.describe, cache=..., prompt_version="rewrite_v1", stats=Counter())
    replies = complete([ChatRequest(id, messages, draft), ...])   # list of str or LLMError, same order

Every LLM reply is stored in an on-disk :class:`ReplyCache` (JSONL, one fsynced line per reply, written as
it arrives) keyed by a hash of (base URL or model path, model, prompt version, messages): a rerun sends
nothing already answered and a crash loses no reply already received.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from dicrepro.progress import tqdm

from dicrepro.atomic import append_jsonl

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404, 405}  # configuration errors: every other request would fail the same way


@dataclass
class ChatRequest:
    """One chat to complete. ``id`` names the sample in errors; ``draft`` is the verbalizer's answer,
    which the ``verbalizer`` backend returns as is."""

    id: str
    messages: list[dict]
    draft: str = ""


class LLMError(RuntimeError):
    """A reply that could not be had. ``fatal``: the backend is misconfigured, stop the whole run."""

    def __init__(self, sample_id: str, message: str, *, fatal: bool = False):
        super().__init__(f"sample {sample_id}: {message}")
        self.sample_id = sample_id
        self.fatal = fatal


class ReplyCache:
    """Replies on disk, one JSON line each: ``{"key", "reply", "id", "model", "source", "prompt_version"}``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._replies: dict[str, str] = {}
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    self._replies[row["key"]] = row["reply"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    if i == len(lines):  # a crash while appending leaves at most the last line torn
                        log.warning("%s:%d: ignoring a torn last line (interrupted write)", self.path, i)
                        continue
                    raise ValueError(f"{self.path}:{i}: not a cache row (JSON with key and reply)") from None
            log.info("reply cache %s: %d replies", self.path, len(self._replies))

    @staticmethod
    def key(source: str, model: str, prompt_version: str, messages: list[dict]) -> str:
        blob = json.dumps([source, model, prompt_version, messages], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._replies.get(key)

    def put(self, key: str, reply: str, **meta) -> None:
        with self._lock:
            append_jsonl(self.path, {"key": key, "reply": reply, **meta})
            self._replies[key] = reply

    def __len__(self) -> int:
        return len(self._replies)


# ---- openai ---------------------------------------------------------------------------------------------


def _retry_after(resp, default: float, cap: float) -> float:
    """Seconds to wait: the server's Retry-After (seconds or HTTP date) when given, else ``default``."""
    value = resp.headers.get("retry-after") if resp is not None else None
    if value:
        try:
            return min(cap, max(0.0, float(value)))
        except ValueError:
            try:
                return min(cap, max(0.0, parsedate_to_datetime(value).timestamp() - time.time()))
            except (TypeError, ValueError):
                pass
    return min(cap, default)


def _content(resp, sample_id: str, url: str) -> tuple[str, dict]:
    """``choices[0].message.content`` and ``usage`` of a 200 reply, or an LLMError saying what is wrong."""
    try:
        data = resp.json()
    except ValueError:
        raise LLMError(sample_id, f"malformed reply from {url}: not JSON: {resp.text[:200]!r}") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(sample_id, f"malformed reply from {url}: no choices[0].message.content in "
                                  f"{json.dumps(data)[:200]}") from None
    if not isinstance(content, str) or not content.strip():
        raise LLMError(sample_id, f"malformed reply from {url}: empty or non-text content {content!r:.80}")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return content, usage


def post_chat(client, url: str, body: dict, sample_id: str, *, max_retries: int, backoff_s: float = 1.0,
              max_backoff_s: float = 60.0, stats: Counter | None = None) -> tuple[str, dict]:
    """POST one chat-completions request; retry 429/5xx/timeouts/connection errors with exponential backoff.

    Returns (content, usage). Raises :class:`LLMError`: fatal for 401/403/404/405 (wrong key, URL or
    model) and for an unreachable server; not fatal for other 4xx, a malformed reply, or retries spent.
    """
    import httpx

    stats = stats if stats is not None else Counter()
    last = ""
    for attempt in range(max_retries + 1):
        wait = backoff_s * 2 ** attempt
        resp = None
        try:
            stats["requests"] += 1
            resp = client.post(url, json=body)
        except httpx.TimeoutException as e:
            last = f"timed out ({type(e).__name__})"
        except httpx.TransportError as e:
            last = f"connection error ({type(e).__name__}: {e})"
            if attempt == max_retries:
                raise LLMError(sample_id, f"cannot reach {url} after {attempt + 1} attempts: {last}; is the "
                                          "server running and describe.base_url right?", fatal=True) from None
        else:
            if resp.status_code == 200:
                return _content(resp, sample_id, url)
            snippet = resp.text[:300].replace("\n", " ")
            if resp.status_code not in RETRY_STATUS and not resp.status_code >= 500:
                hint = (" (check the API key: describe.api_key_env names the environment variable)"
                        if resp.status_code in (401, 403) else
                        " (check describe.base_url, which should end in /v1, and describe.model)"
                        if resp.status_code in (404, 405) else "")
                raise LLMError(sample_id, f"HTTP {resp.status_code} from {url}{hint}: {snippet}",
                               fatal=resp.status_code in FATAL_STATUS)
            last = f"HTTP {resp.status_code}: {snippet[:120]}"
            wait = _retry_after(resp, wait, max_backoff_s)
        if attempt < max_retries:
            stats["http_retries"] += 1
            log.debug("sample %s: %s; retry %d/%d in %.2fs", sample_id, last, attempt + 1, max_retries, wait)
            time.sleep(min(wait, max_backoff_s))
    raise LLMError(sample_id, f"gave up on {url} after {max_retries + 1} attempts; last: {last}")


def openai_backend(params, *, cache: ReplyCache | None, prompt_version: str, stats: Counter | None = None,
                   progress: bool = True, backoff_s: float = 1.0) -> Callable[[list[ChatRequest]], list]:
    """An OpenAI-compatible chat-completions backend (vLLM, Ollama, llama.cpp server, hosted APIs).

    ``params``: :class:`dicrepro.params.DescribeParams` (base_url ending in ``/v1``, model, api_key_env,
    concurrency, timeout_s, max_retries). Greedy (temperature 0), so a reply is a function of its prompt.
    """
    import httpx

    if not params.base_url:
        raise ValueError("describe.base_url is required for the openai backend "
                         "(e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama)")
    if not params.model:
        raise ValueError("describe.model is required for the openai backend (the served model's name)")
    stats = stats if stats is not None else Counter()
    url = params.base_url.rstrip("/") + "/chat/completions"
    key = os.environ.get(params.api_key_env, "")
    if not key:
        # Local servers usually need no key; a hosted API will answer 401 and say so.
        log.info("%s is not set: calling %s without an API key", params.api_key_env, url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def complete(requests: list[ChatRequest]) -> list:
        out: list = [None] * len(requests)
        todo = []
        for i, r in enumerate(requests):
            k = ReplyCache.key(params.base_url, params.model, prompt_version, r.messages)
            hit = cache.get(k) if cache is not None else None
            if hit is not None:
                stats["cache_hits"] += 1
                out[i] = hit
            else:
                todo.append((i, r, k))
        if not todo:
            return out

        def one(r: ChatRequest, k: str) -> str:
            body = {"model": params.model, "messages": r.messages, "temperature": 0}
            text, usage = post_chat(client, url, body, r.id, max_retries=params.max_retries,
                                    backoff_s=backoff_s, stats=stats)
            stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            stats["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            if cache is not None:  # written the moment it arrives: a crash later loses nothing
                cache.put(k, text, id=r.id, model=params.model, source=params.base_url,
                          prompt_version=prompt_version)
            return text

        timeout = httpx.Timeout(params.timeout_s, connect=min(10.0, params.timeout_s))
        limits = httpx.Limits(max_connections=params.concurrency)
        with httpx.Client(timeout=timeout, headers=headers, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=params.concurrency) as pool, \
                tqdm(total=len(todo), desc=f"{params.model} replies", unit="reply", disable=not progress) as bar:
            futures = {pool.submit(one, r, k): i for i, r, k in todo}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        out[i] = fut.result()
                    except LLMError as e:
                        if e.fatal:
                            raise
                        stats["errors"] += 1
                        log.warning("%s", e)
                        out[i] = e
                    bar.update(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # finish in-flight ones (they are cached)
                raise
        return out

    return complete


# ---- hf -------------------------------------------------------------------------------------------------


def hf_backend(params, *, cache: ReplyCache | None, prompt_version: str, stats: Counter | None = None,
               progress: bool = True, max_new_tokens: int = 1536) -> Callable[[list[ChatRequest]], list]:
    """A local transformers causal LM (``describe.hf_path``): its chat template, greedy decoding.

    The model is loaded on the first request the cache cannot answer, so a cached rerun loads nothing.
    """
    if params.hf_path is None:
        raise ValueError("describe.hf_path is required for the hf backend (a local model folder)")
    path = Path(params.hf_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"describe.hf_path does not exist: {path}")
    stats = stats if stats is not None else Counter()
    loaded: dict = {}

    def load():
        if not loaded:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            log.info("loading %s", path)
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype="auto")
            model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
            loaded.update(tok=tok, model=model, torch=torch)
        return loaded["tok"], loaded["model"], loaded["torch"]

    def generate(r: ChatRequest) -> str:
        tok, model, torch = load()
        try:
            enc = tok.apply_chat_template(r.messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
        except ValueError as e:  # no chat template in the folder
            raise LLMError(r.id, f"{path}: cannot apply the tokenizer's chat template: {e}", fatal=True) from None
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        n_in = enc["input_ids"].shape[1]
        stats["prompt_tokens"] += n_in
        stats["completion_tokens"] += int(out.shape[1] - n_in)
        return tok.decode(out[0, n_in:], skip_special_tokens=True)

    def complete(requests: list[ChatRequest]) -> list:
        out: list = []
        for r in tqdm(requests, desc=f"{path.name} replies", unit="reply", disable=not progress):
            k = ReplyCache.key(str(path), path.name, prompt_version, r.messages)
            hit = cache.get(k) if cache is not None else None
            if hit is not None:
                stats["cache_hits"] += 1
                out.append(hit)
                continue
            stats["requests"] += 1
            text = generate(r)
            if cache is not None:
                cache.put(k, text, id=r.id, model=path.name, source=str(path), prompt_version=prompt_version)
            out.append(text)
        return out

    return complete


# ---- verbalizer -----------------------------------------------------------------------------------------


def verbalizer_backend(params=None, *, cache=None, prompt_version: str = "", stats: Counter | None = None,
                       progress: bool = True) -> Callable[[list[ChatRequest]], list]:
    """No LLM: every request is answered by its ``draft``, the offline verbalizer's text."""
    def complete(requests: list[ChatRequest]) -> list:
        return [r.draft for r in requests]

    return complete


BACKENDS: dict[str, Callable] = {"openai": openai_backend, "hf": hf_backend, "verbalizer": verbalizer_backend}
