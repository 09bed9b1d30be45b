"""The parts of the domain file the models need: ``intents.*.examples``, ``out_of_scope`` and
``knowledge``. The rest of the file (responses, forms, policy) belongs to ``dialogue/``, which
``models/`` does not import. The YAML is composed into nodes (safe loader) so every problem
names its line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.errors import InvalidInput
from models.datasets import OOS_LABEL, Example, read_text


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeEntry:
    entry_id: str
    questions: tuple[str, ...]  # the question first, then its alternatives
    answer: str
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainData:
    path: Path
    intents: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # (name, ((example, line), ...))
    out_of_scope: tuple[tuple[str, int], ...] = ()
    knowledge: tuple[KnowledgeEntry, ...] = ()

    def examples(self, *, with_oos: bool = True) -> list[Example]:
        """Intent examples, plus the ``out_of_scope`` list labelled ``oos``."""
        out = [
            Example(text=text, intent=name, where=f"{self.path}:{line}")
            for name, examples in self.intents
            for text, line in examples
        ]
        if with_oos:
            out += [Example(text=t, intent=OOS_LABEL, where=f"{self.path}:{line}") for t, line in self.out_of_scope]
        return out

    def knowledge_entries(self) -> list[tuple[str, list[str], str]]:
        """``(entry_id, [question, *alternatives], answer)`` for ``KnowledgeIndex.build``."""
        return [(e.entry_id, list(e.questions), e.answer) for e in self.knowledge]

    def training_sha256(self) -> str:
        """Hash of what training reads (intents and out_of_scope), not of responses or policy."""
        payload = [[name, [t for t, _ in ex]] for name, ex in self.intents]
        payload.append([OOS_LABEL, [t for t, _ in self.out_of_scope]])
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _fail(path: Path, node: yaml.Node | None, message: str) -> InvalidInput:
    where = f" line {_line(node)}" if node is not None else ""
    return InvalidInput(f"domain file {path}{where}: {message}")


def _get(path: Path, node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _strings(path: Path, node: yaml.Node, what: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(path, node, f"{what}: expected a list of strings, got {node.id}")
    out = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise _fail(path, item, f"{what}: expected a non-empty string, got {item.id}")
        out.append((str(item.value).strip(), _line(item)))
    return tuple(out)


def _text(path: Path, parent: yaml.MappingNode, key: str, what: str) -> str:
    node = _get(path, parent, key)
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _fail(path, node or parent, f"{what}: expected a non-empty string `{key}`")
    return str(node.value).strip()


def _intents(path: Path, node: yaml.Node) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise _fail(path, node, "`intents`: expected a mapping of intent names to {examples: [...]}")
    out = []
    for key, value in node.value:
        name = str(key.value).strip()
        if name.lower() == OOS_LABEL:
            raise _fail(path, key, f"intent name {name!r} is reserved; list such messages under `out_of_scope`")
        if not isinstance(value, yaml.MappingNode):
            raise _fail(path, value, f"intents.{name}: expected a mapping with `examples`, got {value.id}")
        examples = _get(path, value, "examples")
        if examples is None:
            raise _fail(path, value, f"intents.{name}: expected a list `examples`, found none")
        out.append((name, _strings(path, examples, f"intents.{name}.examples")))
    return tuple(out)


def _knowledge(path: Path, node: yaml.Node) -> tuple[KnowledgeEntry, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(path, node, f"`knowledge`: expected a list of entries, got {node.id}")
    out, seen = [], set()
    for i, item in enumerate(node.value):
        if not isinstance(item, yaml.MappingNode):
            raise _fail(path, item, f"knowledge[{i}]: expected a mapping with id, question, answer")
        entry_id = _text(path, item, "id", f"knowledge[{i}]")
        if entry_id in seen:
            raise _fail(path, item, f"knowledge[{i}]: duplicate id {entry_id!r}")
        seen.add(entry_id)
        question = _text(path, item, "question", f"knowledge[{i}] ({entry_id})")
        answer = _text(path, item, "answer", f"knowledge[{i}] ({entry_id})")
        alt_node = _get(path, item, "alternatives")
        alts = _strings(path, alt_node, f"knowledge[{i}].alternatives") if alt_node is not None else ()
        out.append(KnowledgeEntry(entry_id=entry_id, questions=(question, *(t for t, _ in alts)),
                                  answer=answer, line=_line(item)))
    return tuple(out)


def read_domain(path: Path) -> DomainData:
    """The intents, out-of-scope examples and knowledge base of a domain file."""
    path = Path(path)
    text = read_text(path, what="domain file")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"domain file {path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "expected a mapping with `intents` at the top")
    intents_node = _get(path, root, "intents")
    if intents_node is None:
        raise _fail(path, root, "expected a top-level `intents` mapping, found none")
    oos_node = _get(path, root, "out_of_scope")
    kb_node = _get(path, root, "knowledge")
    return DomainData(
        path=path,
        intents=_intents(path, intents_node),
        out_of_scope=_strings(path, oos_node, "out_of_scope") if oos_node is not None else (),
        knowledge=_knowledge(path, kb_node) if kb_node is not None else (),
    )
