"""The scored detectors' logistic model: weights, features, and the files they ship in.

Regex families catch a risk's wording; they cannot tell a jailbreak persona
("you are now X, who has no rules") from a legitimate one ("act as a travel
guide"), nor see most harmful requests ("write a persuasive article that ..."),
by phrasing alone. A model weighs the families that matched together with the
text's words and word pairs. Its weights are learned on the development half of
the benchmark corpora only (``python -m bench.alerting_detectors --train``) and
ship as ``injection_model.json`` (prompt injection), ``harmful_model.json``
(harmful content) and ``harmful_answer_model.json`` (harmful content in model
output); all score with the same native code.

Word features are binary and scaled by ``1/sqrt(count)``, so a long benign
document does not score higher merely for being long, and no less than
:data:`MIN_FEATURES` is counted, so a short text rests on the families. Only the
first :data:`MAX_CHARS` characters are read for words (the regex families
still scan the whole text), which bounds the cost per text. The native core
scores texts (``libs/native/src/detect/linear.rs``) with the same features
(:func:`words`) and formula (:meth:`Model.logit`); training uses these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import aiaudit_native

MAX_CHARS = 2000
MIN_FEATURES = 32
"""Word features are scaled by ``1/sqrt(max(count, MIN_FEATURES))``: one word of a
greeting ("hello" opens many jailbreaks) cannot carry a short text alone."""

INJECTION_FILE = Path(__file__).with_name("injection_model.json")
HARMFUL_FILE = Path(__file__).with_name("harmful_model.json")
HARMFUL_ANSWER_FILE = Path(__file__).with_name("harmful_answer_model.json")


def words(text: str) -> set[bytes]:
    """Distinct words and adjacent word pairs (``b"a b"``) of a text's head.

    ASCII lower-cased, ASCII punctuation blanked, split on ASCII whitespace.
    """
    return set(aiaudit_native.linear_words(text))


def scale(count: int) -> float:
    """The value of each present word feature in a text with ``count`` of them."""
    return 1.0 / math.sqrt(max(count, MIN_FEATURES))


def logistic(z: float) -> float:
    """The probability for log-odds ``z``."""
    return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0


@dataclass(frozen=True)
class Model:
    """Bias, one weight per signal family, one per known word feature."""

    bias: float
    signals: dict[str, float]
    words: dict[bytes, float]

    def logit(self, signals: Iterable[str], features: set[bytes]) -> float:
        """Log-odds given the distinct matched families and the word features."""
        total = self.bias + sum(map(self.signals.get, signals, repeat(0.0)))
        if features:
            total += sum(map(self.words.get, features, repeat(0.0))) * scale(len(features))
        return total

    def strongest_word(self, features: set[bytes]) -> bytes | None:
        """The present word feature with the largest positive weight (evidence)."""
        best = max(features, key=lambda f: self.words.get(f, 0.0), default=None)
        return best if best is not None and self.words.get(best, 0.0) > 0 else None

    def to_json(self) -> str:
        """The weights file's content (sorted, so retraining gives a small diff)."""
        doc = {
            "bias": self.bias,
            "signals": dict(sorted(self.signals.items())),
            "words": {k.decode("utf-8", "surrogatepass"): v for k, v in sorted(self.words.items())},
        }
        return json.dumps(doc, indent=0) + "\n"


AGAINST = frozenset({"refusal"})
"""The harmful answer model's signals written as evidence against (a refusal at the
answer's head): the only weights of a family that may be negative."""


def load(path: Path, against: frozenset[str] = frozenset()) -> Model:
    """A model from its weights file, checked (ValueError naming the file).

    Loaded when the detectors are imported, so a broken file stops the service at
    start-up rather than scoring silently: a NaN weight scores every text with it
    0, a family weighing against would lower what it was written to find. Family
    weights are zero or above, those in ``against`` zero or below.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        model = Model(
            _finite("bias", doc["bias"]),
            {str(k): _finite(k, v) for k, v in doc["signals"].items()},
            {k.encode("utf-8", "surrogatepass"): _finite(k, v) for k, v in doc["words"].items()},
        )
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"{path}: not a model's weights ({e!r})") from e
    wrong = sorted(
        name for name, w in model.signals.items() if (w > 0 if name in against else w < 0)
    )
    if wrong:
        raise ValueError(
            f"{path}: families {wrong} weigh the wrong way (only {sorted(against)} may "
            "count against a text, and never for it)"
        )
    return model


def _finite(name: str, value: object) -> float:
    """A weight, a finite number (JSON's NaN and Infinity are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"weight of {name!r} is {value!r}, not a finite number")
    return float(value)
