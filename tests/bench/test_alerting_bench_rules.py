"""The alerting benchmark's generated rules are rules the service accepts (a refused one
stopped the benchmark, not the tests, when the rules' checks grew stricter)."""

from __future__ import annotations

from aiaudit.alerting.evaluate import Evaluator
from aiaudit.alerting.rules import compile_rule
from bench.alerting_bench import extra_rules


def test_the_benchmarks_rules_compile_and_build() -> None:
    rules = [compile_rule(src) for src in extra_rules()]
    assert len(rules) == 40 and sum(r.window is not None for r in rules) == 10
    Evaluator(rules)
