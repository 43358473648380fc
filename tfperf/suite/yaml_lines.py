"""A suite file → plain Python data plus the line of every key and list item, or a SuiteError naming the line.

ruamel.yaml's round-trip loader is safe (it builds only mappings, lists and scalars, never arbitrary objects)
and, unlike PyYAML's safe loader, remembers where each key and item was, so every later message can name its
line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from tfperf.errors import SuiteError

DocPath = tuple[Any, ...]  # a path into the document: keys and list indexes


@dataclass(frozen=True)
class Document:
    """A suite file read and parsed: its text, the text's sha256, the data and the line of every path."""

    text: str
    sha256: str
    data: dict
    lines: dict[DocPath, int]


def read_document(path: str | Path) -> Document:
    """Read and parse a suite file; SuiteError (with the line when YAML says it) when it cannot be read or
    parsed, or when its top level is not a mapping."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SuiteError.single(shown, None, None, "suite file not found") from None
    except IsADirectoryError:
        raise SuiteError.single(shown, None, None, "is a folder, not a suite file") from None
    except OSError as exc:
        raise SuiteError.single(
            shown, None, None, f"cannot read the suite file: {exc.strerror or exc}"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError.single(shown, None, None, f"not UTF-8 text (byte {exc.start})") from None

    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            started = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            what += f" ({exc.context}{started})"
        raise SuiteError.single(shown, line, None, f"YAML syntax error: {what}") from None
    except YAMLError as exc:
        raise SuiteError.single(shown, None, None, f"YAML error: {exc}") from None

    if not isinstance(doc, CommentedMap):
        kind = "empty" if doc is None else f"a {'list' if isinstance(doc, list) else type(doc).__name__}"
        raise SuiteError.single(
            shown, 1, None, f"the top level must be a mapping with name and cases, but it is {kind}"
        )
    lines: dict[DocPath, int] = {}
    data = to_plain(doc, (), lines)
    return Document(text, hashlib.sha256(raw).hexdigest(), data, lines)


def to_plain(node: Any, path: DocPath, lines: dict[DocPath, int]) -> Any:
    """ruamel's round-trip nodes → dict/list/str/int/float/bool/None, recording the line (1-based) of every
    key and list item under its path."""
    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            try:
                lines[path + (key,)] = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):  # a key that came in through a `<<:` merge
                lines.setdefault(path + (key,), lines.get(path, 1))
            out[key if isinstance(key, (str, int, float, bool)) or key is None else str(key)] = to_plain(
                node[key], path + (key,), lines
            )
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            try:
                lines[path + (i,)] = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines.setdefault(path + (i,), lines.get(path, 1))
            out_list.append(to_plain(item, path + (i,), lines))
        return out_list
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dict):  # plain dict (not produced by round-trip, but be lenient)
        return {k: to_plain(v, path + (k,), lines) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v, path + (i,), lines) for i, v in enumerate(node)]
    return str(node)  # timestamps, binary: keep as text; the models will reject them where a type is expected


def line_of(lines: dict[DocPath, int], path: DocPath) -> int:
    """The line of `path`, or of its nearest ancestor that the document has."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1
