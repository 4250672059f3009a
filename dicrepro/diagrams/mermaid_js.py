"""The mermaid.js the render pages load: the pinned ``mermaid.min.js`` with one speed patch, same pictures.

Profiled on the paper profile's diagrams (Chrome's CPU profiler in a render page), a third of mermaid's
time went into copying its own configuration: ``getConfig()`` returns a fresh deep copy (its
``assignWithDepth`` onto ``{}``: ``Object.entries``, a closure, ``hasOwn`` and ``defineProperty`` per key),
and mermaid calls it about 80 times per diagram, each copy of a thousand keys. :func:`patched` adds a fast
path to ``assignWithDepth`` for exactly that case (an empty plain object as the target) that builds the
same copy with a plain loop: the same keys in the same order, ``null`` values left out, arrays
de-duplicated, objects below the depth limit copied shallowly, a ``__proto__`` key kept as an own
property, as the original does. Every other call takes mermaid's own code.

The patch is applied to the bytes served to the page, never to the file on disk. It is found by a pattern
of the minified source; if the pattern is not there exactly once (another mermaid build), the file is
served as shipped and a warning says so. ``tests/test_render.py`` renders every diagram type, themes and
realistic diagrams with and without it and requires the same PNG bytes.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# assignWithDepth's head in the minified build: `vD=s((e,t,{depth:r=2}={})=>{`, names captured.
_HEAD = re.compile(rb"\b\w+=\w+\(\((\w+),(\w+),\{depth:(\w+)=2\}=\{\}\)=>\{")
_NAME = b'"assignWithDepth")'
# The body of the original stays after this prefix; {e}/{t}/{r} are its parameter names.
_FAST = ('if({e}!==null&&typeof {e}=="object"&&Object.getPrototypeOf({e})===Object.prototype&&'
         'Object.isExtensible({e})&&Object.getOwnPropertyNames({e}).length===0&&{t}!==null&&'
         'typeof {t}=="object"&&!Array.isArray({t})&&{r}>0)'
         'return(function f(e,t,r){{for(const a of Object.keys(t)){{const o=t[a];let v=o;'
         'if(typeof o=="object"){{if(o===null)continue;'
         'if(Array.isArray(o)){{v=[];o.forEach(x=>{{v.includes(x)||v.push(x)}})}}'
         'else v=r<=1?Object.assign({{}},o):f({{}},o,r-1)}}'
         'else if(a==="__proto__")continue;'
         'a==="__proto__"?Object.defineProperty(e,a,{{value:v,writable:!0,enumerable:!0,configurable:!0}}):e[a]=v}}'
         'return e}})({e},{t},{r});')


def patched(js: bytes) -> bytes:
    """``js`` (mermaid.min.js) with the fast configuration copy, or unchanged (with a warning) when the
    minified ``assignWithDepth`` is not found exactly once."""
    heads = [m for m in _HEAD.finditer(js) if _NAME in js[m.end():m.end() + 1500]]
    if len(heads) != 1:
        log.warning("mermaid.js: assignWithDepth not found once (%d matches); serving it unpatched, "
                    "rendering is slower but the same", len(heads))
        return js
    m = heads[0]
    e, t, r = (g.decode() for g in m.groups())
    return js[:m.end()] + _FAST.format(e=e, t=t, r=r).encode() + js[m.end():]
