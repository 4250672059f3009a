"""Han characters: the one range every module uses to tell Chinese text from other text.

CJK unified ideographs, extension A and the compatibility ideographs. Kept in one place because the
metrics' tokenisation, the language guesses and the tokenizer's character coverage must agree on what a
Chinese character is.
"""

from __future__ import annotations

import re

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # the body of a character class: f"[{HAN}]"
HAN_CHAR = re.compile(f"[{HAN}]")
HAN_RUN = re.compile(f"[{HAN}]+")
