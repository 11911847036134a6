"""The one YAML reader of sweep files and ``--set`` values: PyYAML's safe loader, with numbers in
every YAML spelling and a key given twice in one mapping refused.

``load(stream)`` returns what ``yaml.safe_load`` would (plain data: no object is ever built from a
tag) or raises a ``yaml.YAMLError``: ``DuplicateKey`` names the repeated key, the dotted path of its
mapping and both lines. It imports nothing of the harness, so ``harness.config`` (a leaf) uses it.
"""
from __future__ import annotations

import math
import re

import yaml

FLOAT_TAG = "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"

# PyYAML implements YAML 1.1, whose floats need a dot and a signed exponent: 1e-9, 1E5, +1e3 and
# 6.02e23 read as text there, and a number's check then calls them "not a finite number". This is
# YAML 1.2's float rule restricted to the spellings with an exponent (those without one already
# read as floats; 1e, e5 and inf stay text).
FLOAT_WITH_EXPONENT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


class DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping gives ``key`` twice: PyYAML would keep the last value and say nothing."""

    def __init__(self, path: str, key: str, first: yaml.Mark, again: yaml.Mark):
        # key: as written the second time; path: the dotted path of its mapping ("" at the top level)
        self.path, self.key = path, key
        self.first_line, self.line = first.line + 1, again.line + 1
        super().__init__(None, None, f"duplicate key {key!r} at line {self.line} (first at line {self.first_line})",
                         again)


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 exponent floats and duplicate keys refused.

    PyYAML has no option to refuse a repeated key, so the check is written here. It walks the
    composed node tree before anything is constructed, not inside ``construct_mapping``: a merge key
    (``<<: *base``) makes the constructor flatten the merged mapping's pairs into the node in place,
    so a key a merge brings in and the mapping's own key that overrides it would look like a
    duplicate there, and the walk also knows each mapping's dotted path for the message. Anchors and
    aliases are walked once (an alias is the same node)."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            self._refuse_duplicate_keys(node, "", set())
        return node

    def _refuse_duplicate_keys(self, node, path: str, walked: set) -> None:
        if id(node) in walked:
            return
        walked.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._refuse_duplicate_keys(item, f"{path}[{i}]", walked)
        elif isinstance(node, yaml.MappingNode):
            first = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:  # merged mappings are checked as themselves, where written
                    self._refuse_duplicate_keys(value_node, path, walked)
                    continue
                key = self._key(key_node)
                if key is not None:
                    if key in first:
                        raise DuplicateKey(path, key_node.value, first[key], key_node.start_mark)
                    first[key] = key_node.start_mark
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                self._refuse_duplicate_keys(value_node, f"{path}.{name}" if path else name, walked)

    def _key(self, key_node):
        """The key as the mapping will hold it (yes and true are one key), or None for a key that is
        not a scalar (the constructor refuses those as unhashable)."""
        if not isinstance(key_node, yaml.ScalarNode):
            return None
        try:
            return self.construct_object(key_node)
        except Exception:  # a key such as 2020-13-45 fails when the mapping is built, as it would unchecked
            self.recursive_objects.pop(key_node, None)  # else that later build reports a "recursive node"
            return (key_node.tag, key_node.value)

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if math.isinf(value) and "inf" not in node.value.lower():
            # 1e400 is no number a setting can take: kept as written, so a number's check refuses it
            # as text that overflows a float, showing it as typed, not as inf
            return node.value
        return value


Loader.add_implicit_resolver(FLOAT_TAG, FLOAT_WITH_EXPONENT, list("-+.0123456789"))
Loader.add_constructor(FLOAT_TAG, Loader.construct_yaml_float)


def load(stream):
    """One YAML document as plain data (``yaml.safe_load``'s types), through ``Loader``."""
    return yaml.load(stream, Loader=Loader)
