"""Reading YAML a user wrote (params files): safe tags only, no duplicate keys, bounded aliases.

``yaml.safe_load`` keeps the last of two equal keys without a word (a user's second ``seed:`` silently
wins), builds a recursive alias into a structure that later code recurses into forever, and lets a 1 KB
"billion laughs" file expand into 10^9 values for the code that walks it. :func:`load_yaml` refuses all
three with a message naming the line.
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

MAX_VALUES = 100_000  # values after expanding aliases; a params file has a few hundred
MAX_BYTES = 1 << 20


class YamlError(ValueError):
    """The text is not YAML this package accepts; the message names the line."""


class _Loader(yaml.SafeLoader):
    pass


def _mapping_without_duplicates(loader: _Loader, node: MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merged keys ("<<: *base") may be overridden; that is what merging is for
        key = loader.construct_object(key_node)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if first != key_node.start_mark.line + 1:
            raise ConstructorError(None, None, f"duplicate key {key!r} (first given on line {first})",
                                   key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _check_expansion(root) -> None:
    """Refuse recursive aliases and documents whose aliases expand to more than MAX_VALUES values."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        children = ([c for kv in node.value for c in kv] if isinstance(node, MappingNode)
                    else list(node.value) if isinstance(node, SequenceNode) else [])
        if done:
            on_path.discard(nid)
            size[nid] = 1 + sum(size[id(c)] for c in children)
            if size[nid] > MAX_VALUES:
                raise YamlError(f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_VALUES} "
                                "values (an alias bomb?)")
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise YamlError(f"line {node.start_mark.line + 1}: an alias refers to itself (recursive alias)")
        on_path.add(nid)
        stack.append((node, True))
        for c in children:
            if id(c) in on_path:
                raise YamlError(f"line {c.start_mark.line + 1}: an alias refers to a value that contains "
                                "it (recursive alias)")
            if id(c) not in size:
                stack.append((c, False))


def load_yaml_text(text: str):
    """Parse ``text`` like ``yaml.safe_load``, refusing duplicate keys, recursive aliases and alias bombs
    (:class:`YamlError`, naming the line)."""
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as e:
        raise YamlError(" ".join(str(e).split())) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlError(where + (e.problem or e.context or "not valid YAML")) from None
    except yaml.YAMLError as e:
        raise YamlError(" ".join(str(e).split())) from None
    except RecursionError:
        raise YamlError("nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path):
    """Read and parse the YAML file ``path`` (a regular file under 1 MiB, UTF-8), see :func:`load_yaml_text`.

    OSError (missing, a folder) propagates; anything else wrong with the file is a :class:`YamlError`.
    """
    path = Path(path)
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise YamlError("not a regular file")  # a FIFO would block, /dev/zero never ends
    if st.st_size > MAX_BYTES:
        raise YamlError(f"{st.st_size} bytes; a params file is far smaller (limit {MAX_BYTES})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(f"not UTF-8 text (byte {e.start})") from None
    return load_yaml_text(text)
