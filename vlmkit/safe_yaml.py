"""Reading a YAML config a user wrote (Data-Juicer recipes, retrieval configs) with one-line errors.

PyYAML's SafeLoader already refuses Python object tags. On top of it, while the document is composed and before
anything is built:

- aliases and anchors (`&a` / `*a`) are refused: a few lines of nested aliases expand to gigabytes ("billion
  laughs"), and no config of this toolkit needs them;
- a key given twice in one mapping is refused (PyYAML would silently keep the last one);
- malformed YAML and YAML nested too deeply to read are one line naming the file, line and column.

`where` callbacks let each config kind name the place of a duplicate its own way (a recipe names the operator).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from vlmkit.io import QUOTE_LIMIT, InputError, quote


class _RefusedYAML(Exception):
    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


def _loader(what: str):
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
                raise _RefusedYAML(f"YAML {kind}{str(event.anchor)[:40]} is not allowed in a {what} (write the "
                                   f"values out)", event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def _default_where(trail: list) -> tuple[str, str]:
    return ".".join(str(t)[:40] for t in trail), "key"


def check_duplicate_keys(node, where: str, trail: list,
                         describe: Callable[[list], tuple[str, str]] = _default_where) -> None:
    """Refuse a mapping key given twice; `describe(trail)` -> (place, "key" or "parameter") for the message."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            check_duplicate_keys(child, where, [*trail, i], describe)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # SafeLoader refuses unhashable keys itself
            line, key = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
            if key in seen:
                inside, what = describe(trail)
                raise InputError(f"{where}: line {line}: {inside + ': ' if inside else ''}{what} "
                                 f"{quote(key_node.value, 60)} given twice (first at line {seen[key]})")
            seen[key] = line
            check_duplicate_keys(value_node, where, [*trail, key_node.value], describe)


def load_yaml(text: str, path: str | os.PathLike, what: str = "config",
              describe: Callable[[list], tuple[str, str]] = _default_where) -> Any:
    """Parse `text` (read from `path`) under the rules above; every problem is an `InputError` naming `path`."""
    import yaml

    loader = _loader(what)(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_duplicate_keys(node, str(path), [], describe)
        return loader.construct_document(node) if node is not None else None
    except _RefusedYAML as exc:
        raise InputError(f"{path}: line {exc.mark.line + 1} column {exc.mark.column + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise InputError(f"{path}: malformed YAML{at}: {str(problem)[:QUOTE_LIMIT]}") from None
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_value(text: str, where: str) -> Any:
    """One scalar or flow value (a `--config_override key=value`'s value), under the same rules."""
    return load_yaml(text, where, "value")
