"""YAML -> a tree of nodes that remember where they were written.

pyyaml's composer gives positions; its constructor forgets them. This module walks the
composed node graph itself: scalars are resolved by pyyaml's safe constructor, mappings keep
each key's position, duplicate keys are errors (pyyaml silently keeps the last), anchors and
aliases share one node, and merge keys (``<<: *defaults``) merge with explicit keys winning.

Hostile input is refused before it costs anything (a pass over pyyaml's event stream, which
is iterative, runs before the recursive composer): nesting deeper than ``MAX_DEPTH``, and a
document whose aliases would expand to more than ``MAX_EXPANDED_VALUES`` values (a "billion
laughs" bomb, even under an ignored ``x-`` key), are located errors. Converted nodes are
shared, never copied, so an alias costs one node. Every scalar that cannot be read as its tag
says (``!!int zero``, ``!!timestamp x``, an unknown ``!tag``) is a located error; an unclosed
quote points at the quote, a control character at its own line and column.
"""
from dataclasses import dataclass, field
import re
from typing import Any, Dict, List, Optional

import yaml

from .errors import ErrorList, Pos, SpecError, first_line

MERGE_TAG = "tag:yaml.org,2002:merge"
#: collections deeper than this are refused (a spec needs about 8 levels)
MAX_DEPTH = 64
#: values a document may hold with every alias expanded (the shipped specs hold < 1,000)
MAX_EXPANDED_VALUES = 100_000
#: the tags a collection may carry (a spec is plain mappings and lists)
COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


@dataclass
class Node:
    """A YAML value and its position. ``value`` is a scalar, a list of Nodes, or a dict of
    str -> Node (then ``key_pos`` holds each key's position)."""

    value: Any
    pos: Pos
    key_pos: Dict[str, Pos] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def plain(self) -> Any:
        """The value without positions (lists stay lists)."""
        if self.is_mapping:
            return {k: v.plain() for k, v in self.value.items()}
        if self.is_list:
            return [v.plain() for v in self.value]
        return self.value


def _pos(file: str, mark) -> Pos:
    return Pos(file, mark.line + 1, mark.column + 1)


def parse(text: str, file: str = "<string>") -> Node:
    """Parse one YAML document into Nodes; raise SpecErrors for syntax errors, duplicate keys,
    bad merge keys, bad tags, hostile nesting or aliases and an empty document."""
    try:
        _check_events(text, file)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError(_index_pos(text, exc.position, file),
                        f"invalid YAML: control character {_char_name(exc.character)} is not "
                        f"allowed in a spec (remove it, or write it as an escape in a "
                        f"double-quoted string)") from None
    except yaml.YAMLError as exc:
        raise SpecError(Pos(file, 1, 1), f"invalid YAML: {first_line(exc)}") from None
    except RecursionError:  # _check_events bounds the depth; a last line of defence
        raise SpecError(Pos(file, 1, 1), f"invalid YAML: nested too deeply (at most "
                                         f"{MAX_DEPTH} levels)") from None
    if root is None:
        raise SpecError(Pos(file, 1, 1), "the spec is empty; it needs at least 'version: 1' and 'splits:'")
    errors = ErrorList()
    node = _Converter(file, errors).convert(root)
    errors.raise_if_any()
    return node


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    """A syntax error at the place to fix: the opening quote or bracket of an unclosed one
    (pyyaml's problem mark is then the end of the file), else where pyyaml stopped."""
    problem = first_line(exc.problem)
    context = first_line(exc.context) if exc.context else ""
    at_end = "end of stream" in problem and exc.context_mark is not None
    mark = exc.context_mark if at_end or exc.problem_mark is None else exc.problem_mark
    if at_end and "quoted scalar" in context:
        return SpecError(_pos(file, mark), "invalid YAML: this quoted string is never closed "
                                           "(no closing quote before the end of the file)")
    if at_end:
        return SpecError(_pos(file, mark), f"invalid YAML: {problem} ({context} here is never "
                                           f"closed)")
    suffix = f" ({context})" if context else ""
    return SpecError(_pos(file, mark), f"invalid YAML: {problem}{suffix}")


def _check_events(text: str, file: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and aliases that expand past MAX_EXPANDED_VALUES,
    at the place written, before anything recursive or expanding runs."""
    sizes: Dict[str, int] = {}  # anchor -> values its node holds, aliases expanded
    stack: List[list] = []  # open collections: [anchor, values so far]
    expanded = 0  # values added by aliases
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise SpecError(_pos(file, event.start_mark), f"nested more than {MAX_DEPTH} "
                                f"levels deep; a spec needs far fewer (is a bracket unclosed?)")
            stack.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor, 1)  # unknown or still open: the composer says why
            expanded += size
            if expanded > MAX_EXPANDED_VALUES:
                raise SpecError(_pos(file, event.start_mark), f"aliases expand the spec to more "
                                f"than {MAX_EXPANDED_VALUES:,} values here (an alias bomb?); "
                                f"a spec is refused past that size")
        else:
            continue
        if stack:
            stack[-1][1] += size


def _index_pos(text: str, index: int, file: str) -> Pos:
    """The line and column of character ``index`` of ``text`` (YAML's line breaks)."""
    before = text[:max(0, index)]
    breaks = list(_LINE_BREAK.finditer(before))
    column = index - breaks[-1].end() if breaks else index
    return Pos(file, len(breaks) + 1, column + 1)


def _char_name(code: Any) -> str:
    return f"U+{code:04X}" if isinstance(code, int) else repr(code)


class _Converter:
    def __init__(self, file: str, errors: ErrorList):
        self.file = file
        self.errors = errors
        self.scalars = yaml.constructor.SafeConstructor()
        self.active: set = set()  # nodes being converted (recursive aliases)
        self.done: Dict[int, Node] = {}  # yaml node -> its Node: an alias shares, never copies
        self.keep: List[yaml.Node] = []  # keeps the ids in ``done`` unique

    def convert(self, node: yaml.Node) -> Node:
        if id(node) in self.done:
            return self.done[id(node)]
        pos = _pos(self.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            result = Node(self._scalar(node), pos)
        elif id(node) in self.active:
            self.errors.add(pos, "an alias refers to a node that contains it (recursive anchor)")
            return Node(None, pos)
        else:
            if node.tag not in COLLECTION_TAGS:
                kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
                self.errors.add(pos, f"unsupported YAML tag {_tag_name(node.tag)} on a {kind}; "
                                     f"a spec holds plain mappings and lists")
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.SequenceNode):
                    result = Node([self.convert(item) for item in node.value], pos)
                else:
                    result = self._mapping(node, pos)
            finally:
                self.active.discard(id(node))
        self.done[id(node)] = result
        self.keep.append(node)
        return result

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        """The scalar's value as its tag (explicit or resolved) says; a located error and the
        text itself when it cannot be read so (``!!int zero``, ``!!timestamp x``, ``!foo``)."""
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            if "could not determine a constructor" in str(exc.problem):
                message = f"unsupported YAML tag {_tag_name(node.tag)}; write the value without a tag"
            else:  # a known tag whose constructor refused the text (bad base64, say)
                message = f"cannot read {_quote(node.value)} as {_tag_name(node.tag)}"
        except Exception:  # the tag's constructor failed on this text (ValueError, TypeError...)
            message = f"cannot read {_quote(node.value)} as {_tag_name(node.tag)}"
        self.errors.add(_pos(self.file, node.start_mark), message)
        return node.value

    def _mapping(self, node: yaml.MappingNode, pos: Pos) -> Node:
        explicit: Dict[str, Node] = {}
        key_pos: Dict[str, Pos] = {}
        merged: List[Node] = []
        for key_node, value_node in node.value:
            kpos = _pos(self.file, key_node.start_mark)
            if key_node.tag == MERGE_TAG:
                merged.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.add(kpos, "a key must be a plain name, not a list or mapping")
                continue
            key = self._scalar(key_node)
            key = key if isinstance(key, str) else str(key_node.value)
            if key in explicit:
                first = key_pos[key]
                self.errors.add(kpos, f"duplicate key '{key}' (first set at line {first.line})")
                continue
            explicit[key] = self.convert(value_node)
            key_pos[key] = kpos
        result, result_pos = {}, {}
        for source in merged:  # later sources do not override earlier ones (YAML merge spec)
            for key, value in source.value.items():
                if key not in result:
                    result[key], result_pos[key] = value, source.key_pos[key]
        result.update(explicit)
        result_pos.update(key_pos)
        return Node(result, pos, result_pos)

    def _merge_sources(self, value_node: yaml.Node) -> List[Node]:
        items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        sources = []
        for item in items:
            converted = self.convert(item)
            if converted.is_mapping:
                sources.append(converted)
            else:
                self.errors.add(converted.pos, "'<<' merges mappings only (an alias of a mapping, "
                                               "or a list of them)")
        return sources


def _tag_name(tag: Optional[str]) -> str:
    """A tag as written: ``tag:yaml.org,2002:int`` -> ``!!int``."""
    tag = tag or "?"
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _quote(text: str) -> str:
    text = first_line(text)
    return f"'{text[:40]}...'" if len(text) > 40 else f"'{text}'"
