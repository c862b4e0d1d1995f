"""Linear probes: what scene attributes can be read linearly from the reason states, layer by layer.

States are the residual stream after each decoder layer at each probed token (K reason tokens and
[EMBED]). A logistic-regression probe (scikit-learn, standardised features) is fitted per
(layer, token) on a training part and scored on a held-out part; the same probe fitted on shuffled
training labels is the control (what a probe of this capacity gets from nothing), and the
majority class is the floor. The K = 0 (discriminative) model's [EMBED] states are the baseline
that tells whether the reason tokens add anything.

Attributes of a Shapes example:
    n_objects       how many objects (1-4)
    has_<colour>    whether a colour is present (five binary probes; "colours_present" averages them)
    answer_colour   the colour of the answer object of a two-step relational question
    answer_shape    its shape
    asked_colour    on colour_of questions ("what colour is the square ?") in scenes of two or more
                    objects, the colour of the object named: a binding probe (the colours present do
                    not give it; one-object scenes, which they would, are left out)
    asked_shape     on shape_of questions ("what shape is the red object ?"), likewise
    question_shape  on the same colour_of questions, the shape the question names ("square"): does
                    the state read the question at all? (a word of the text, not of the image)
    question_colour on the same shape_of questions, the colour the question names
    question_relation on two-step relational questions, the relation the question asks ("left",
                    "right", "above", "below"): a word of the text, the step a written rationale
                    copies ("then look left"); does the state carry it?
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lame_tools.data.shapes import COLOURS, Example, make_example, make_subtask_example
from lame_tools.errors import InputError
from lame_tools.model import LameModel
from lame_tools.probe.hooks import num_layers, prepare_batch, run_with_cache
from lame_tools.probe.results import FrameMixin

ATTRIBUTES = ("n_objects", "colours_present", "answer_colour", "answer_shape", "asked_colour", "asked_shape",
              "question_shape", "question_colour", "question_relation")
# the attributes read from two-step relational questions
RELATIONAL = ("answer_colour", "answer_shape", "question_relation")
# the binding probes: attribute -> (the subtask whose questions it reads, the attribute of the object
# asked); the question_* ones label the object's other attribute, the one the question names
ASKED = {"asked_colour": ("colour_of", "colour"), "asked_shape": ("shape_of", "shape"),
         "question_shape": ("colour_of", "shape"), "question_colour": ("shape_of", "colour")}


@dataclass
class ProbeStates:
    """Residual states of N queries. states: [N, layer, Q, hidden] float32; query_tokens: the Q names."""

    states: np.ndarray
    query_tokens: list[str]
    layers: list[int]
    mode: str


@dataclass
class LinearProbeResult(FrameMixin):
    """Held-out accuracy of linear probes for one attribute.

    Attributes:
        attribute: e.g. "answer_colour".
        layers: decoder layer indices (rows).
        query_tokens: probed tokens (columns).
        accuracy: [layer, Q] held-out accuracy.
        control: [layer, Q] held-out accuracy of the same probe trained on shuffled labels.
        majority: accuracy of always answering the most frequent training class.
        n_train, n_test: examples in each part.
        classes: the label values.
    """

    attribute: str
    layers: list[int]
    query_tokens: list[str]
    accuracy: np.ndarray
    control: np.ndarray
    majority: float
    n_train: int
    n_test: int
    classes: list[str]

    def best(self) -> tuple[int, str, float]:
        """(layer, token, accuracy) of the best probe."""
        layer, token = np.unravel_index(int(self.accuracy.argmax()), self.accuracy.shape)
        return self.layers[layer], self.query_tokens[token], float(self.accuracy[layer, token])

    def rows(self) -> list[dict[str, object]]:
        """One row per (layer, token): accuracy, control, majority, sizes."""
        return [{"attribute": self.attribute, "layer": layer, "token": token, "accuracy": float(self.accuracy[li, qi]),
                 "control": float(self.control[li, qi]), "majority": self.majority, "n_train": self.n_train,
                 "n_test": self.n_test}
                for li, layer in enumerate(self.layers) for qi, token in enumerate(self.query_tokens)]

    def plot(self, title: str = ""):
        """Held-out accuracy by layer per token, with the shuffled-label control and the majority floor."""
        from lame_tools import viz

        return viz.probe_accuracy(self.layers, self.accuracy, self.query_tokens, self.control, self.majority,
                                  title=title or f"{self.attribute}: held-out accuracy")

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["attribute", "layer", "token", "accuracy", "control", "majority", "n_train", "n_test"])
        for li, layer in enumerate(self.layers):
            for qi, token in enumerate(self.query_tokens):
                writer.writerow(
                    [
                        self.attribute,
                        layer,
                        token,
                        f"{self.accuracy[li, qi]:.4f}",
                        f"{self.control[li, qi]:.4f}",
                        f"{self.majority:.4f}",
                        self.n_train,
                        self.n_test,
                    ]
                )
        return out.getvalue()


def _first_examples(n: int, make, keep) -> list[Example]:
    """The first `n` examples `make(index)` gives (None: the scene cannot pose it) that `keep` accepts,
    looking at no more than 50 n scenes."""
    examples: list[Example] = []
    index = 0
    while len(examples) < n and index < 50 * n:
        example = make(index)
        if example is not None and keep(example):
            examples.append(example)
        index += 1
    return examples


def relational_examples(n: int, split: str = "train", seed: int = 0) -> list[Example]:
    """The first `n` two-step relational questions ("what is left of the red square ?") of a split."""
    return _first_examples(n, lambda i: make_example(seed, split, i, task="vqa"), lambda e: e.subtask == "relation_two_step")


def asked_examples(subtask: str, n: int, split: str = "train", seed: int = 0) -> list[Example]:
    """The first `n` colour_of / shape_of questions of a split about scenes of two or more objects."""
    return _first_examples(n, lambda i: make_subtask_example(seed, split, i, subtask), lambda e: len(e.scene.objects) >= 2)


def probe_examples(attribute: str, n: int, split: str = "train", seed: int = 0) -> list[Example]:
    """`n` Shapes examples suited to an attribute (relational questions for answer_*, colour_of /
    shape_of questions for asked_*)."""
    if attribute not in ATTRIBUTES and not attribute.startswith("has_"):
        raise InputError(f"attribute must be one of {ATTRIBUTES} or has_<colour>, got {attribute!r}.")
    if attribute in RELATIONAL:
        return relational_examples(n, split, seed)
    if attribute in ASKED:
        return asked_examples(ASKED[attribute][0], n, split, seed)
    return _first_examples(n, lambda i: make_example(seed, split, i), lambda e: e.query_has_image)


def attribute_labels(examples: Sequence[Example], attribute: str) -> np.ndarray:
    """Labels [N] (strings) of an attribute; answer_* and question_relation need relational-question examples."""
    if attribute == "n_objects":
        return np.array([str(len(e.scene.objects)) for e in examples])
    if attribute.startswith("has_"):
        colour = attribute[4:]
        if colour not in COLOURS:
            raise InputError(f"Unknown colour {colour!r}; colours are {COLOURS}.")
        return np.array([str(any(o.colour == colour for o in e.scene.objects)) for e in examples])
    if attribute in RELATIONAL:
        labels = []
        for e in examples:
            if e.subtask != "relation_two_step" or e.answer_object is None:
                raise InputError(f"{attribute} needs relational-question examples (got subtask {e.subtask!r}).")
            labels.append({"answer_colour": e.answer_object.colour, "answer_shape": e.answer_object.shape,
                           "question_relation": e.relation}[attribute])
        return np.array(labels)
    if attribute in ASKED:
        subtask, field_name = ASKED[attribute]
        if any(e.subtask != subtask or e.answer_object is None for e in examples):
            raise InputError(f"{attribute} needs {subtask} examples.")
        return np.array([getattr(e.answer_object, field_name) for e in examples])
    raise InputError(f"attribute must be one of {ATTRIBUTES} or has_<colour>, got {attribute!r}.")


def collect_states(
    model: LameModel,
    examples: Sequence[Example],
    mode: str | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
) -> ProbeStates:
    """Residual states after each layer at the probed tokens of each example's query."""
    mode = mode or model.config.default_mode
    chosen = list(range(num_layers(model))) if layers is None else list(layers)
    names = [f"blocks.{i}.hook_resid_post" for i in chosen]
    chunks, tokens = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        prepared = prepare_batch(model, [e.query_item() for e in chunk], mode)
        _, cache = run_with_cache(model, prepared, names)
        chunks.append(cache.stack("hook_resid_post", chosen).permute(1, 0, 2, 3).numpy())  # [batch, layer, Q, hidden]
        tokens = cache.query_tokens
    return ProbeStates(np.concatenate(chunks), tokens, chosen, mode)


def fit_probes(
    states: ProbeStates,
    labels: np.ndarray,
    attribute: str = "attribute",
    test_fraction: float = 0.3,
    seed: int = 0,
    c: float = 1.0,
) -> LinearProbeResult:
    """Fit one logistic-regression probe per (layer, token); held-out accuracy and shuffled control."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    n = len(labels)
    if n != states.states.shape[0]:
        raise InputError(f"Got {n} labels for {states.states.shape[0]} states.")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise InputError(f"{attribute} has a single value in these examples; a probe needs at least two.")
    stratify = labels if counts.min() >= 2 else None
    train, test = train_test_split(np.arange(n), test_size=test_fraction, random_state=seed, stratify=stratify)
    rng = np.random.default_rng(seed)
    shuffled = labels[train][rng.permutation(len(train))]
    values, train_counts = np.unique(labels[train], return_counts=True)
    majority = float((labels[test] == values[train_counts.argmax()]).mean())
    n_layers, n_tokens = states.states.shape[1:3]
    accuracy = np.zeros((n_layers, n_tokens), np.float32)
    control = np.zeros((n_layers, n_tokens), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny data sets
        for li in range(n_layers):
            for qi in range(n_tokens):
                x = states.states[:, li, qi]
                for target, table in ((labels[train], accuracy), (shuffled, control)):
                    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
                    probe.fit(x[train], target)
                    table[li, qi] = probe.score(x[test], labels[test])
    return LinearProbeResult(
        attribute,
        list(states.layers),
        list(states.query_tokens),
        accuracy,
        control,
        majority,
        len(train),
        len(test),
        [str(v) for v in classes],
    )


def linear_probe(
    model: LameModel,
    attribute: str,
    n: int = 300,
    split: str = "train",
    seed: int = 0,
    mode: str | None = None,
    states: ProbeStates | None = None,
) -> LinearProbeResult:
    """Probe one attribute end to end: examples, states, probes ("colours_present" averages has_<colour>).

    Args:
        states: reuse collected states (they must come from `probe_examples(attribute, n, split, seed)`).
    """
    examples = probe_examples(attribute, n, split, seed)
    if len(examples) < 10:
        raise InputError(f"Only {len(examples)} examples found for {attribute}; a probe needs more.")
    states = states or collect_states(model, examples, mode)
    if attribute != "colours_present":
        return fit_probes(states, attribute_labels(examples, attribute), attribute, seed=seed)
    parts = [fit_probes(states, attribute_labels(examples, f"has_{c}"), f"has_{c}", seed=seed) for c in COLOURS]
    return LinearProbeResult(
        "colours_present",
        parts[0].layers,
        parts[0].query_tokens,
        np.mean([p.accuracy for p in parts], 0),
        np.mean([p.control for p in parts], 0),
        float(np.mean([p.majority for p in parts])),
        parts[0].n_train,
        parts[0].n_test,
        ["False", "True"],
    )
