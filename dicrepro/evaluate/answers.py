"""Reading the answer out of a model's reply to an objective question.

Following VLMEvalKit's order: look for one option letter first ("B", "(B)", "Answer: B", "答案是B"),
then fall back to the text of one option ("Router"); a reply that is exactly one option's text is read
as that option before any capital letter inside it. Anything ambiguous (two different letters, two
options' texts) or unreadable is *unparsed*: it counts as wrong and is reported separately.
True/false ("True", "false", "正确", "错误", "yes/no") and numbers ("3", "three", "三") are read the same way.
"""

from __future__ import annotations

import re
import unicodedata

from dicrepro.evaluate.diagram_type import caption_type

LETTERS = "ABCDEFGH"

# "Answer: B", "The answer is (B)", "答案：B", "答案是 B", "选B", "选择 B", "option B"
_CUED = re.compile(
    r"(?:answer(?:\s+is)?|option|choice|choose|select|pick|答案(?:是|为|应为|应该是)?|选项|选择|选)"
    r"\s*[:：]?\s*(?:is\s*)?[(（\[]?\s*([A-Ha-h])\b(?![-'’])", re.IGNORECASE)
# a capital letter standing alone as a token: "B", "(B)", "B.", "B)", "B:", "**B**" (not "B-tree", "X2")
_BARE_UPPER = re.compile(r"(?<![A-Za-z0-9'’-])([A-H])(?![A-Za-z0-9'’-])")
_ARTICLE_A = re.compile(r"\s+(?!or\b|and\b)[a-z]")  # "A router ..." is the English article, not option A
# a whole reply that is just a letter, any case: "b", "(c)", "d."
_ONLY_LETTER = re.compile(r"^\W*([A-Ha-h])\W*$")

_TRUE_EN = {"true", "yes", "correct", "right"}
_FALSE_EN = {"false", "no", "incorrect", "wrong"}
_TRUE_ZH = r"正确|对|是的|真"
_FALSE_ZH = r"错误|错|否|假"

_EN_NUM = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}


def _norm(s: str) -> str:
    """Case-, width- and space-insensitive form for comparing option texts."""
    s = unicodedata.normalize("NFKC", s).lower()
    return re.sub(r"[\s\"'`*_.,:;!?。，：；！？“”‘’()（）\[\]]+", " ", s).strip()


def _one(found: set[str]) -> str | None:
    return next(iter(found)) if len(found) == 1 else None


def extract_choice(text: str, options: list[str], language: str | None = None) -> str | None:
    """The option letter (``"A"``..) a reply chooses, or None when it is unparseable or ambiguous.

    Tries, in order: a cued letter ("Answer: B", "答案是B", "选B"); a reply that is only a letter (any
    case); a reply that is exactly one option's text; standalone capital letters ("B", "(B)", "B. Router");
    an option's text contained in the reply (exactly one option). ``language`` is accepted for symmetry;
    every rule covers English and Chinese replies. Lower-case letters are read only when cued or alone,
    never inside prose ("a router").
    """
    del language  # the rules are language-independent; kept in the signature for callers that pass it
    if not text or not text.strip():
        return None
    valid = set(LETTERS[: len(options)]) if options else set(LETTERS[:4])
    t = unicodedata.normalize("NFKC", text).strip()

    cued = {m.upper() for m in _CUED.findall(t)} & valid
    if cued:
        return _one(cued)
    m = _ONLY_LETTER.match(t)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper()
    reply = _norm(t)
    texts = [_norm(o) for o in options]
    # a reply that is exactly one option's text chooses it, even when that text holds a capital letter
    # of its own ("Type B" as option C): read as a bare letter, it would choose B
    exact = {LETTERS[i] for i, o in enumerate(texts) if o and o == reply}
    if exact:
        return _one(exact)
    bare = {m.group(1) for m in _BARE_UPPER.finditer(t)
            if not (m.group(1) == "A" and _ARTICLE_A.match(t, m.end()))} & valid
    if bare:
        # "B. Router" names a letter and its text; "A or B" names two letters: ambiguous
        return _one(bare)
    if not options:
        return None
    # an option's text inside a longer reply; longest texts first so "SMF" does not match inside "SMF-2"
    contained = {LETTERS[i] for i, o in enumerate(texts)
                 if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", reply)}
    if len(contained) > 1:  # drop options that are substrings of another matched option
        contained = {c for c in contained
                     if not any(c != d and texts[LETTERS.index(c)] in texts[LETTERS.index(d)] for d in contained)}
    return _one(contained)


def extract_bool(text: str) -> bool | None:
    """True/False from "True", "false.", "Yes", "not true", "正确", "错误", "不对"; None if both or neither."""
    if not text or not text.strip():
        return None
    # negations first, so "not correct" and "不正确" are read as false, not as containing a true-word
    t = re.sub(r"\b(?:not|isn't|is not)\s+(?:true|correct|right)\b", " false ", _norm(text))
    t = re.sub(r"不(?:正确|对|是)", "错误", t)
    words = set(re.findall(r"[a-z]+", t))
    hits = set()
    if words & _TRUE_EN or re.search(_TRUE_ZH, t):
        hits.add(True)
    if words & _FALSE_EN or re.search(_FALSE_ZH, t):
        hits.add(False)
    return _one(hits)


def _zh_number(s: str) -> int | None:
    """Chinese numerals up to 99: 三, 十, 十二, 二十, 二十三."""
    if not s or any(c not in _ZH_DIGIT and c != "十" for c in s):
        return None
    if "十" not in s:
        return _ZH_DIGIT[s] if len(s) == 1 else None
    tens, _, ones = s.partition("十")
    t = _ZH_DIGIT.get(tens, None) if tens else 1
    o = _ZH_DIGIT.get(ones, None) if ones else 0
    return None if t is None or o is None else t * 10 + o


def extract_number(text: str) -> int | None:
    """The one integer a reply gives: "3", "There are 3 nodes.", "three", "三个", "共有十二个"; None when
    none or several different numbers appear."""
    if not text or not text.strip():
        return None
    t = unicodedata.normalize("NFKC", text).lower()
    found = {int(x) for x in re.findall(r"(?<![\w.])\d+(?![\w.]|\.\d)", t)}
    found |= {_EN_NUM[w] for w in re.findall(r"[a-z]+", t) if w in _EN_NUM}
    for run in re.findall(r"[零〇一二两三四五六七八九十]+", t):
        n = _zh_number(run)
        if n is not None:
            found.add(n)
    return _one(found)


def _key_kind(key: str) -> str:
    k = key.strip().lower()
    if k in ("true", "false"):
        return "bool"
    if re.fullmatch(r"-?\d+", k):
        return "number"
    if len(k) == 1 and k.upper() in LETTERS:
        return "choice"
    raise ValueError(f"answer_key {key!r} is not a letter A-H, true/false or an integer")


def is_correct(item: dict, text: str) -> tuple[bool, bool]:
    """(correct, parsed) for a reply to an objective item with ``options`` and ``answer_key`` (a letter,
    ``"true"``/``"false"``, or an integer string; for kind ``type``, a diagram type such as ``"pie"``, read
    from the reply like a caption's type). Unparsed replies are wrong."""
    key = str(item["answer_key"])
    if item.get("kind") == "type":
        got = caption_type(text)
        return (got == key, got is not None)
    kind = _key_kind(key)
    options = list(item.get("options") or [])
    if kind == "choice":
        got = extract_choice(text, options, item.get("language"))
        return (got == key.strip().upper(), got is not None)
    if kind == "bool":
        got = extract_bool(text)
        if got is None and options:  # true/false offered as lettered options
            letter = extract_choice(text, options)
            if letter is not None:
                got = extract_bool(options[LETTERS.index(letter)])
        return (got is not None and got == (key.strip().lower() == "true"), got is not None)
    got = extract_number(text)
    if got is None and options:  # counting with lettered numeric options
        letter = extract_choice(text, options)
        if letter is not None:
            got = extract_number(options[LETTERS.index(letter)])
    return (got is not None and got == int(key), got is not None)
