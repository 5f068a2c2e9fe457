"""Training of the detectors' linear models (injection, harmful), on development halves only.

Pure Python (no numpy): L2-regularised logistic regression fitted with
AdaGrad SGD over the signal families that matched (a detector's regex
patterns: injection families, harmful-content categories) and the binary word
features of :mod:`aiaudit.alerting.detectors.linear`, positives up-weighted.
Family weights are kept at zero or above: the families were written as
evidence for (an injection family that benign system prompts also match, a
harmful category that a history question also matches, must not come to count
against a text the family was written for), except those named as evidence
against (the harmful answer model's refusal).
The operating point is chosen by 5-fold cross-validation on the development
half (the highest recall whose pooled out-of-fold false-positive rate stays
within ``TARGET_FPR``) and folded into the bias, so the detector's fixed 0.5
threshold sits there. Seeded: the same corpora give the same weights file.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiaudit.alerting.detectors import linear

MIN_DF = 12
EPOCHS = 12
L2 = 1e-4
RATE = 0.2
POSITIVE_WEIGHT = 3.0
TARGET_FPR = 0.01
SEED = 13
KEEP = 1e-3
"""Word weights under this magnitude are left out of the file."""


@dataclass(frozen=True)
class Example:
    """One text as the model sees it: matched families, word features, label, and
    the weight of a negative's loss (a positive's is ``POSITIVE_WEIGHT``)."""

    signals: tuple[str, ...]
    words: tuple[bytes, ...]
    scale: float
    positive: bool
    weight: float = 1.0


Spans = Callable[[str], list[tuple[str, int, int]]]
"""A detector's signal families of a text: ``injection.signal_spans``, ``harmful.signal_spans``."""


def example(text: str, positive: bool, spans: Spans, weight: float = 1.0) -> Example:
    """Features of a text, exactly as the detector computes them."""
    signals = tuple(sorted({name for name, _, _ in spans(text)}))
    words = linear.words(text)
    return Example(signals, tuple(sorted(words)), linear.scale(len(words)), positive, weight)


def fit(
    data: Sequence[Example],
    seed: int = SEED,
    min_df: int = MIN_DF,
    against: frozenset[str] = frozenset(),
) -> linear.Model:
    """Logistic regression on the examples (vocabulary: words in ``min_df`` texts or more).

    Family weights stay at zero or above, except those of the families in
    ``against`` (signals written as evidence against: a refusal).
    """
    df = Counter(w for e in data for w in e.words)
    families = sorted({s for e in data for s in e.signals})
    vocab = sorted(w for w, n in df.items() if n >= min_df)
    signal_index = {s: i for i, s in enumerate(families)}
    bounded = {signal_index[s] for s in families if s not in against}
    word_index = {w: i for i, w in enumerate(vocab, len(families))}
    rows = [
        [(signal_index[s], 1.0) for s in e.signals]
        + [(word_index[w], e.scale) for w in e.words if w in word_index]
        for e in data
    ]
    weights = [0.0] * (len(families) + len(vocab))
    squares = [1e-8] * len(weights)
    bias, bias_sq = 0.0, 1e-8
    order = list(range(len(data)))
    rng = random.Random(seed)
    for _ in range(EPOCHS):
        rng.shuffle(order)
        for i in order:
            row, positive = rows[i], data[i].positive
            z = bias + sum(weights[j] * x for j, x in row)
            p = 1 / (1 + math.exp(-z)) if z > -30 else 0.0
            g = (p - 1.0) * POSITIVE_WEIGHT if positive else p * data[i].weight
            bias_sq += g * g
            bias -= RATE * g / math.sqrt(bias_sq)
            for j, x in row:
                grad = g * x + L2 * weights[j]
                squares[j] += grad * grad
                weights[j] -= RATE * grad / math.sqrt(squares[j])
                if j in bounded and weights[j] < 0:
                    weights[j] = 0.0  # a matched family is evidence for, never against
    signals = {s: round(weights[i], 4) for s, i in signal_index.items()}
    words = {w: round(weights[i], 4) for w, i in word_index.items() if abs(weights[i]) >= KEEP}
    return linear.Model(round(bias, 4), signals, words)


def out_of_fold(
    data: Sequence[Example],
    measured: Sequence[Example],
    folds: int = 5,
    min_df: int = MIN_DF,
    against: frozenset[str] = frozenset(),
) -> list[float]:
    """Each measured example's logit from a model fitted on the other folds' training examples."""
    logits = [0.0] * len(data)
    for k in range(folds):
        model = fit(
            [e for i, e in enumerate(data) if i % folds != k], min_df=min_df, against=against
        )
        for i in range(k, len(data), folds):
            logits[i] = model.logit(measured[i].signals, set(measured[i].words))
    return logits


def operating_point(
    logits: Sequence[float], data: Sequence[Example], target: float = TARGET_FPR
) -> float:
    """The lowest logit cut whose false-positive rate is within ``target``."""
    negatives = sorted(
        (z for z, e in zip(logits, data, strict=True) if not e.positive), reverse=True
    )
    allowed = int(target * len(negatives))
    return negatives[allowed] + 1e-4 if allowed < len(negatives) else min(logits)


def rates(logits: Sequence[float], data: Sequence[Example], cut: float) -> tuple[float, float]:
    """Recall and false-positive rate at a logit cut."""
    pos = [z >= cut for z, e in zip(logits, data, strict=True) if e.positive]
    neg = [z >= cut for z, e in zip(logits, data, strict=True) if not e.positive]
    return sum(pos) / max(len(pos), 1), sum(neg) / max(len(neg), 1)


@dataclass(frozen=True)
class Labelled:
    """A development text: as trained on and as measured (they differ only for pyrit's
    templates: slots empty for training, filled for measuring), its label, the weight
    of its loss if it is a negative, and whether the cut counts it if it is one."""

    text: str
    measured: str
    positive: bool
    weight: float = 1.0
    counted: bool = True


def train(
    texts: Sequence[Labelled],
    spans: Spans,
    target: float = TARGET_FPR,
    min_df: int = MIN_DF,
    against: frozenset[str] = frozenset(),
) -> tuple[linear.Model, str]:
    """The model and a summary: the cut keeps the out-of-fold false-positive rate of
    the counted negatives (each once, whatever its weight) within ``target``.
    ``min_df`` and ``against`` as for :func:`fit`."""
    data = [example(x.text, x.positive, spans, x.weight) for x in texts]
    measured = [example(x.measured, x.positive, spans) for x in texts]
    logits = out_of_fold(data, measured, min_df=min_df, against=against)
    counted = [i for i, x in enumerate(texts) if x.positive or x.counted]
    chosen = [measured[i] for i in counted]
    cut = operating_point([logits[i] for i in counted], chosen, target)
    recall, fpr = rates(logits, measured, cut)
    _, counted_fpr = rates([logits[i] for i in counted], chosen, cut)
    model = fit(data, min_df=min_df, against=against)
    shifted = linear.Model(round(model.bias - cut, 4), model.signals, model.words)
    summary = (
        f"{len(data)} development texts ({sum(e.positive for e in data)} positive); "
        f"5-fold out-of-fold recall {100 * recall:.1f}%, FPR {100 * fpr:.2f}% "
        f"({100 * counted_fpr:.2f}% of the {len(chosen) - sum(e.positive for e in chosen)} "
        f"negatives the cut counts) at the cut; {len(model.words)} word weights"
    )
    return shifted, summary
