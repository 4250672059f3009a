"""METEOR as nltk computes it (``nltk.translate.meteor_score.single_meteor_score``), written out with each
word's stem and WordNet synonyms looked up once per process instead of once per caption, and the WordNet
3.0 it reads (Debian's ``wordnet-base``, plus the ``lexnames`` file nltk needs).

nltk aligns a hypothesis with its reference in three passes: exact words, then Porter stems of the words
left, then WordNet synonyms of the stems left (a hypothesis word matches a reference word found among the
lemma names, without "_", of its synsets, or itself). In each pass the hypothesis words are taken from
the last to the first, and each takes the last reference word still free that fits. The score is
``(1 - gamma * (chunks / matches) ** beta) * fmean`` with ``fmean = P * R / (alpha * P + (1 - alpha) * R)``
(alpha 0.9, beta 3, gamma 0.5), 0 without a match. nltk rebuilds a word's synonym set from WordNet's
synsets and lemmas every time the word is left unmatched; on 10,000 captions that rebuilding is most of
METEOR's time. The passes, their order and the formula are nltk's, so the scores are nltk's (tests compare
both on English and Chinese captions).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from dicrepro.atomic import write_bytes_atomic, write_text_atomic
from dicrepro.text.han import HAN_RUN

log = logging.getLogger(__name__)


def _match(hyp: list[tuple[int, str]], ref: list[tuple[int, str]], fits=None):
    """One pass: (matches (hyp index, ref index), hyp left, ref left). ``fits(word)``: the reference words
    a hypothesis word matches (default: itself), the last free one taken (nltk's ``_match_enums`` and
    ``_enum_wordnetsyn_match``)."""
    positions: dict[str, list[int]] = {}
    for j, (_, word) in enumerate(ref):
        positions.setdefault(word, []).append(j)
    matches, used_h, used_r = [], set(), set()
    for i in range(len(hyp) - 1, -1, -1):
        if fits is None:
            free = positions.get(hyp[i][1])
            if not free:
                continue
            j = free.pop()
        else:
            best_j, best = -1, None
            for w in fits(hyp[i][1]):
                free = positions.get(w)
                if free and free[-1] > best_j:
                    best_j, best = free[-1], w
            if best is None:
                continue
            j = positions[best].pop()
        used_h.add(i)
        used_r.add(j)
        matches.append((hyp[i][0], ref[j][0]))
    return (matches, [p for i, p in enumerate(hyp) if i not in used_h],
            [p for j, p in enumerate(ref) if j not in used_r])


def _chunks(matches: list[tuple[int, int]]) -> int:
    """Fewest runs of matches adjacent in both texts (nltk's ``_count_chunks``)."""
    return 1 + sum(1 for a, b in zip(matches, matches[1:]) if not (b[0] == a[0] + 1 and b[1] == a[1] + 1))


def meteor(reference: Sequence[str], hypothesis: Sequence[str], stem: Callable[[str], str],
           synonyms: Callable[[str], frozenset[str]], alpha: float = 0.9, beta: float = 3.0,
           gamma: float = 0.5) -> float:
    """METEOR of one tokenised hypothesis against one reference, as nltk's ``single_meteor_score`` with
    ``preprocess`` the identity; ``stem`` and ``synonyms`` (memoised by the caller) as nltk derives them."""
    hyp, ref = list(enumerate(hypothesis)), list(enumerate(reference))
    exact, hyp_left, ref_left = _match(hyp, ref)
    stems, hyp_left, ref_left = _match([(i, stem(w)) for i, w in hyp_left], [(j, stem(w)) for j, w in ref_left])
    syns, _, _ = _match(hyp_left, ref_left, synonyms)  # (on the stems left, as nltk)
    matches = sorted(exact + stems + syns, key=lambda m: m[0])
    n = len(matches)
    try:
        precision = float(n) / len(hyp)
        recall = float(n) / len(ref)
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        frag_frac = float(_chunks(matches)) / n
    except ZeroDivisionError:
        return 0.0
    return (1 - gamma * frag_frac**beta) * fmean


def meteor_items(rt: Sequence[Sequence[str]], pt: Sequence[Sequence[str]]) -> list[float]:
    """METEOR of each tokenised (reference, hypothesis) pair: nltk's ``meteor_score([r], p, preprocess=str)``
    with WordNet from :func:`wordnet_reader` (our tokens are lower-cased already)."""
    return [meteor(r, p, stem, synonyms) for r, p in zip(rt, pt)]


# --- WordNet from Debian ------------------------------------------------------------------------------

# The 45 lexicographer files of WordNet 3.0 (wndb(5WN) "lexnames"), in index order, with their
# syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb). Debian ships every other dict file.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl"
).split()
_POS_NUM = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_WN_FILES = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj",
             "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc", "cntlist.rev")
DEBIAN_WORDNET = Path("/usr/share/wordnet")


def lexnames_text() -> str:
    """The standard WordNet 3.0 ``lexnames`` file, which Debian's wordnet-base lacks and nltk needs."""
    return "".join(f"{i:02d}\t{n}\t{_POS_NUM[n.split('.')[0]]}\n" for i, n in enumerate(_LEXNAMES))


def wordnet_dir() -> Path:
    """A WordNet 3.0 dict folder nltk can read: ``$DICREPRO_WORDNET`` if set, else a copy of Debian's
    /usr/share/wordnet plus ``lexnames`` under ~/.cache/dicrepro/wordnet (made once). Copied, not
    symlinked: nltk refuses files that resolve outside the corpus root."""
    import os

    if os.environ.get("DICREPRO_WORDNET"):
        d = Path(os.environ["DICREPRO_WORDNET"]).expanduser()
        missing = [f for f in ("lexnames",) + _WN_FILES if not (d / f).exists()]
        if missing:
            raise FileNotFoundError(f"DICREPRO_WORDNET={d} lacks WordNet files {missing}")
        return d
    if not (DEBIAN_WORDNET / "data.noun").exists():
        raise FileNotFoundError(f"WordNet not found at {DEBIAN_WORDNET} (METEOR needs it): `make setup` "
                                "installs the Debian package wordnet-base; or set DICREPRO_WORDNET to a "
                                "WordNet 3.0 dict folder")
    d = Path.home() / ".cache" / "dicrepro" / "wordnet"
    if not (d / "lexnames").exists():
        for f in _WN_FILES:
            write_bytes_atomic(d / f, (DEBIAN_WORDNET / f).read_bytes())
        write_text_atomic(d / "lexnames", lexnames_text())  # last: its presence marks a complete copy
        log.info("prepared WordNet for METEOR in %s", d)
    return d


@functools.cache
def wordnet_reader():
    """nltk's WordNetCorpusReader over :func:`wordnet_dir`, loaded once per process."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _WordNet30(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # this *is* WordNet 3.0: no mapping to nltk's (absent) "wordnet" corpus

    d = wordnet_dir()
    if str(d) not in nltk.data.path:
        nltk.data.path.append(str(d))  # nltk only opens corpus files under its declared data roots
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": we need none
        return _WordNet30(str(d), None)


class _CachedSynsets:
    """WordNet's ``synsets(word)`` memoised per word: METEOR asks for the same words again and again."""

    def __init__(self, reader):
        self._reader, self._cache = reader, {}

    def synsets(self, word):
        hit = self._cache.get(word)
        if hit is None:
            hit = self._cache[word] = self._reader.synsets(word)
        return hit


@functools.cache
def resources():
    """(Porter stemmer, WordNet synsets), both memoised per word, loaded once per process."""
    from nltk.stem.porter import PorterStemmer

    class _CachedPorter(PorterStemmer):
        @functools.lru_cache(maxsize=200_000)
        def stem(self, word, to_lowercase=True):
            return super().stem(word, to_lowercase)

    return _CachedPorter(), _CachedSynsets(wordnet_reader())




@functools.lru_cache(maxsize=200_000)
def synonyms(word: str) -> frozenset[str]:
    """What nltk's METEOR lets ``word`` match in its WordNet pass: the lemma names (without "_") of its
    synsets, and itself. (A Chinese word has no synset in WordNet: not looked up.)"""
    if HAN_RUN.fullmatch(word):
        return frozenset((word,))
    _, wn = resources()
    return frozenset(lemma.name() for synset in wn.synsets(word) for lemma in synset.lemmas()
                     if lemma.name().find("_") < 0) | {word}


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Porter stem nltk's METEOR matches on. (Porter's rules remove English suffixes: a Chinese word is
    its own stem, as nltk's PorterStemmer returns it.)"""
    return word if HAN_RUN.fullmatch(word) else resources()[0].stem(word)
