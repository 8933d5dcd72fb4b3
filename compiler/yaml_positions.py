"""YAML -> a tree of nodes that remember where they were written.

pyyaml's composer gives positions; its constructor forgets them. This module walks the
composed node graph itself: scalars are resolved by pyyaml's safe constructor, mappings keep
each key's position, duplicate keys are errors (pyyaml silently keeps the last), anchors and
aliases share one node, and merge keys (``<<: *defaults``) merge with explicit keys winning.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List

import yaml

from .errors import ErrorList, Pos, SpecError, first_line

MERGE_TAG = "tag:yaml.org,2002:merge"


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
    bad merge keys and an empty document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = f" ({first_line(exc.context)})" if exc.context else ""
        raise SpecError(_pos(file, mark), f"invalid YAML: {first_line(exc.problem)}{context}") from None
    except yaml.YAMLError as exc:
        raise SpecError(Pos(file, 1, 1), f"invalid YAML: {first_line(exc)}") from None
    if root is None:
        raise SpecError(Pos(file, 1, 1), "the spec is empty; it needs at least 'version: 1' and 'splits:'")
    errors = ErrorList()
    node = _Converter(file, errors).convert(root)
    errors.raise_if_any()
    return node


class _Converter:
    def __init__(self, file: str, errors: ErrorList):
        self.file = file
        self.errors = errors
        self.scalars = yaml.constructor.SafeConstructor()
        self.active: set = set()  # nodes being converted (recursive aliases)

    def convert(self, node: yaml.Node) -> Node:
        pos = _pos(self.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return Node(self._scalar(node), pos)
        if id(node) in self.active:
            self.errors.add(pos, "an alias refers to a node that contains it (recursive anchor)")
            return Node(None, pos)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return Node([self.convert(item) for item in node.value], pos)
            return self._mapping(node, pos)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:  # e.g. an unknown !tag: keep the text
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
