"""Reading user YAML safely: size limit, bounded alias expansion, no duplicate keys, errors with line and column.

``yaml.safe_load`` already refuses arbitrary tags, but it expands nested aliases without bound (a few hundred
bytes of "billion laughs" YAML take gigabytes), silently keeps the last of two equal keys, and raises exceptions
whose text is only readable next to a traceback. :func:`load_yaml_mapping` composes the node graph first (aliases
stay references, so composing is cheap), counts the nodes an expansion would create and refuses beyond a bound,
then constructs the data with a loader that rejects duplicate keys. Every problem is a :class:`SpecError`
(a ``ValueError``) whose message names the file, the line and column, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_BYTES", "MAX_NODES", "SpecError", "load_yaml_mapping"]

#: Largest campaign file read (bytes).
MAX_BYTES = 1 << 20
#: Most YAML nodes a file may expand into, counting every alias use (a campaign has a few hundred).
MAX_NODES = 100_000


class SpecError(ValueError):
    """A user file that cannot be read as the expected YAML mapping."""


def _where(path: Path, mark: yaml.Mark | None) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class raise its own error
                break
            if duplicate:
                first = seen[key].start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.line + 1}); keep only one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _count_nodes(root: yaml.Node, limit: int) -> int:
    """Nodes the fully expanded document would have; stops counting (returns > limit) past ``limit``."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return count


def load_yaml_mapping(path: str | Path, what: str = "campaign file", max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Read ``path`` as one YAML mapping, safely; raise :class:`SpecError` with a located, readable message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size > max_bytes:
        raise SpecError(f"{path}: {size} bytes is larger than the {max_bytes}-byte limit of a {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        if _count_nodes(node, MAX_NODES) > MAX_NODES:
            raise SpecError(
                f"{path}: the YAML expands to more than {MAX_NODES} nodes (nested aliases?); write the values out"
            )
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{_where(path, mark)}: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a {what} must be a YAML mapping (name:, salts:, …), not {type(data).__name__}")
    return data
