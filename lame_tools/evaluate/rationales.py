"""Field-level accuracy of a generated CoT rationale against the scene graph of its example.

`lame_tools.data.tasks` writes every gold rationale from the scene graph as a few steps, each ending
in " .":

    objects : yellow diamond , blue square .          the scene's objects, left to right
    find the blue square .                            the anchor (an object, or the shape / colour asked about)
    then look left : yellow diamond .                 the relation and the object it leads to
    find red : red circle , red square .              the objects of one colour ("nothing" for none)
    count : two .                                     a number word
    answer : a yellow diamond .                       the answer (last)

`parse_rationale` splits any string into such steps (never raising); `score_rationale(text, example)`
compares a generated rationale with its example field by field:

    well_formed        every step parses, the first lists the objects, the last (and only that one)
                       is the answer, and the text ends with its " ."
    objects_exact      the listed object names are the scene's, none missing, extra or repeated
    objects_precision  listed names that are in the scene / listed names (0 when none is listed)
    objects_recall     the scene's names that are listed / the scene's names
    anchor             the "find the X" step names the gold X
    relation           the "then look R" step names the gold R
    related            ... and the gold object after it
    filtered           the "find C : ..." step has the gold colour and lists the gold objects
    count              the "count : N" step has the gold N
    answer             the "answer : A" step has the gold A

The object fields are read off `example.scene`; the step fields off the gold rationale, which
`tasks.py` wrote from the same graph. A field the gold rationale has no step for is None (not
applicable, e.g. `count` for colour_of); a step the generated text lacks scores 0. Where a step
occurs twice the first one counts (well_formed is 0 for a repeated objects or answer step). Names
are compared as multisets, in any order. Matching is exact after lower-casing and putting spaces
around ". , :" (what the word-level tokenizer's decode gives).

`score_task_rationales` gives what the harness stores in a cot-mode task result
(`result["rationales"]`: the generated texts and, per field, the per-query scores);
`summarize_rationales` turns those into the summary's "rationales" block.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lame_tools.data.tasks import Example

FIELDS = (
    "well_formed",
    "objects_exact",
    "objects_precision",
    "objects_recall",
    "anchor",
    "relation",
    "related",
    "filtered",
    "count",
    "answer",
)
STEP_KINDS = ("objects", "anchor", "look", "filter", "count", "answer", "unknown")
# The step field each step kind feeds (objects and well_formed are scored apart).
_STEP_FIELDS = {"anchor": ("anchor",), "look": ("relation", "related"), "filter": ("filtered",),
                "count": ("count",), "answer": ("answer",)}
_PUNCTUATION = re.compile(r"\s*([.,:])\s*")


@dataclass(frozen=True)
class Step:
    """One parsed step: `kind` (one of STEP_KINDS), `head` (the relation of a look step, the colour
    of a filter step, else ""), `value` (the text after the step's keywords) and `items` (the
    names a list step gives: objects, filter)."""

    kind: str
    head: str = ""
    value: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedRationale:
    """The steps of a rationale in order, and whether its text ended with a step's " ."."""

    steps: tuple[Step, ...]
    terminated: bool

    def first(self, kind: str) -> Step | None:
        """The first step of `kind`, or None."""
        return next((s for s in self.steps if s.kind == kind), None)

    def count(self, kind: str) -> int:
        """How many steps are of `kind`."""
        return sum(1 for s in self.steps if s.kind == kind)

    @property
    def well_formed(self) -> bool:
        """Every step parses, objects first, the answer last and once, objects once, ends in " ."."""
        return (
            self.terminated
            and len(self.steps) >= 2
            and self.steps[0].kind == "objects"
            and self.steps[-1].kind == "answer"
            and self.count("objects") == 1
            and self.count("answer") == 1
            and self.count("unknown") == 0
        )


def normalize(text: Any) -> str:
    """Lower-case, spaces around ". , :", runs of white space as one space; a non-string is "" (None)
    or its `str`."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    return " ".join(_PUNCTUATION.sub(r" \1 ", text.lower()).split())


def _names(words: Sequence[str]) -> tuple[str, ...]:
    """The comma-separated names in `words`, empty ones left out."""
    names, current = [], []
    for word in [*words, ","]:
        if word == ",":
            if current:
                names.append(" ".join(current))
            current = []
        else:
            current.append(word)
    return tuple(names)


def _parse_step(words: list[str]) -> Step:
    """One step from its words (the " ." already removed); `unknown` when no step form fits."""
    text = " ".join(words)
    if len(words) >= 2 and words[0] == "objects" and words[1] == ":":
        return Step("objects", value=" ".join(words[2:]), items=_names(words[2:]))
    if len(words) >= 3 and words[:2] == ["find", "the"] and ":" not in words:
        return Step("anchor", value=" ".join(words[2:]))
    if len(words) >= 3 and words[0] == "find" and words[2] == ":" and words[1] not in (":", ","):
        listed = _names(words[3:])
        return Step("filter", head=words[1], value=" ".join(words[3:]), items=() if listed == ("nothing",) else listed)
    if len(words) >= 5 and words[:2] == ["then", "look"] and words[3] == ":" and words[2] not in (":", ","):
        return Step("look", head=words[2], value=" ".join(words[4:]))
    if len(words) >= 3 and words[0] == "count" and words[1] == ":":
        return Step("count", value=" ".join(words[2:]))
    if len(words) >= 3 and words[0] == "answer" and words[1] == ":":
        return Step("answer", value=" ".join(words[2:]))
    return Step("unknown", value=text)


def parse_rationale(text: Any) -> ParsedRationale:
    """Split a rationale into steps at each "." (see the module docstring); never raises. Words after
    the last "." form a last step, and the rationale is then not terminated."""
    words = normalize(text).split()
    steps, current = [], []
    for word in words:
        if word == ".":
            if current:  # an empty step (". .") is skipped
                steps.append(_parse_step(current))
            current = []
        else:
            current.append(word)
    terminated = not current and bool(steps)
    if current:
        steps.append(_parse_step(current))
    return ParsedRationale(tuple(steps), terminated)


def _overlap(listed: Sequence[str], truth: Sequence[str]) -> int:
    return sum((Counter(listed) & Counter(truth)).values())


def score_rationale(text: Any, example: Example) -> dict[str, float | None]:
    """Each field of FIELDS for a generated rationale `text` about `example`: 1.0 right, 0.0 wrong,
    precision / recall in [0, 1], None where the gold rationale has no such step. Pure; never raises
    on `text` (any string, None)."""
    generated = parse_rationale(text)
    gold = parse_rationale(example.rationale)
    scores: dict[str, float | None] = dict.fromkeys(FIELDS)
    scores["well_formed"] = float(generated.well_formed)

    truth = [normalize(o.name) for o in example.scene.left_to_right()]
    listed_step = generated.first("objects")
    listed = list(listed_step.items) if listed_step is not None else []
    hits = _overlap(listed, truth)
    scores["objects_exact"] = float(Counter(listed) == Counter(truth))
    scores["objects_precision"] = hits / len(listed) if listed else 0.0
    scores["objects_recall"] = hits / len(truth) if truth else float(not listed)

    for kind, fields in _STEP_FIELDS.items():
        expected = gold.first(kind)
        if expected is None:
            continue
        got = generated.first(kind)
        for name in fields:
            scores[name] = float(got is not None and _step_field_right(name, got, expected))
    return scores


def _step_field_right(name: str, got: Step, expected: Step) -> bool:
    """Whether field `name` of the generated step `got` equals the gold step `expected`'s."""
    if name == "relation":
        return got.head == expected.head
    if name == "filtered":
        return got.head == expected.head and Counter(got.items) == Counter(expected.items)
    return got.value == expected.value


# ---- the Shapes examples behind an evaluation's queries ------------------------------------------------


def shapes_examples(
    seed: int, split: str, limit: int | None = None, per_subtask: int | None = None
) -> dict[str, list[Example]]:
    """The examples of a Shapes evaluation by subtask, in the order of its tasks' queries (the order
    `shapes.mmeb_rows` writes them in: the balanced split with `per_subtask`, else the fixed one)."""
    from lame_tools.data.shapes import balanced_examples, iter_split

    if per_subtask is not None:
        examples = [example for _, example in balanced_examples(seed, split, per_subtask)]
    else:
        examples = list(iter_split(seed, split, limit))
    by_subtask: dict[str, list[Example]] = {}
    for example in examples:
        by_subtask.setdefault(example.subtask, []).append(example)
    return by_subtask


def score_task_rationales(texts: Sequence[str], examples: Sequence[Example]) -> dict:
    """The rationales of one task's queries, column by column: {"texts": the generated rationales,
    "fields": {field: per-query scores}}, only the fields that apply to some query (None where one
    does not)."""
    if len(texts) != len(examples):
        raise ValueError(f"{len(texts)} rationales for {len(examples)} examples")
    scores = [score_rationale(text, example) for text, example in zip(texts, examples)]
    fields = {name: [s[name] for s in scores] for name in FIELDS}
    return {
        "texts": list(texts),
        "fields": {name: values for name, values in fields.items() if any(v is not None for v in values)},
    }


# ---- the summary block -------------------------------------------------------------------------------


def _field_stats(columns: Sequence[Mapping[str, Sequence[float | None]]]) -> dict[str, dict]:
    """Per field that applies to some query of `columns` (the "fields" of one or more tasks): its
    mean, 95% interval (Wilson for 0/1 fields, bootstrap for precision / recall;
    `lame_tools.intervals.score_interval`) and number of queries."""
    from lame_tools.intervals import score_interval

    stats = {}
    for name in FIELDS:
        values = [float(v) for column in columns for v in column.get(name, ()) if v is not None]
        if values:
            found = score_interval(values)
            stats[name] = {"mean": found.estimate, "interval": [found.low, found.high], "n": found.n}
    return stats


def summarize_rationales(task_results: Mapping[str, dict]) -> dict | None:
    """The "rationales" block of a summary, from the tasks whose result carries rationale scores
    (`score_task_rationales`; None when none does): {"overall": {"n", "fields"}, "tasks": {task:
    {"n", "fields"}}}, `n` the number of queries and `fields` {field: {"mean", "interval", "n"}} for
    the fields that apply; overall pools the queries of every task."""
    scored = {name: r["rationales"] for name, r in task_results.items() if r.get("rationales") is not None}
    if not scored:
        return None
    return {
        "overall": {
            "n": sum(len(r["texts"]) for r in scored.values()),
            "fields": _field_stats([r["fields"] for r in scored.values()]),
        },
        "tasks": {name: {"n": len(r["texts"]), "fields": _field_stats([r["fields"]])} for name, r in scored.items()},
    }


_LABELS = {
    "well_formed": "well-formed",
    "objects_exact": "objects exact",
    "objects_precision": "P",
    "objects_recall": "R",
}


def format_rationales(block: Mapping) -> str:
    """One line: the overall mean of each rationale field in percent (the number of queries first)."""
    fields = block["overall"]["fields"]

    def cell(name: str) -> str:
        return f"{_LABELS.get(name, name)} {100 * fields[name]['mean']:.1f}"

    parts = [cell(name) for name in ("well_formed", "objects_exact") if name in fields]
    pr = [cell(name) for name in ("objects_precision", "objects_recall") if name in fields]
    if pr and parts:
        parts[-1] += f" ({' '.join(pr)})"
    parts += [cell(name) for name in FIELDS[4:] if name in fields]
    return f"rationales (n={block['overall']['n']}): " + " | ".join(parts)
