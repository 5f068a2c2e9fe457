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


def load(path: Path) -> Model:
    """A model from its weights file."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return Model(
        float(doc["bias"]),
        {str(k): float(v) for k, v in doc["signals"].items()},
        {k.encode("utf-8", "surrogatepass"): float(v) for k, v in doc["words"].items()},
    )
