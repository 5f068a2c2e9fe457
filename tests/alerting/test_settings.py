"""Alerting settings that cannot work are refused at start-up, naming the setting.

Found by a review (2026-12-05): ``AlertingSettings.validate`` passed ``batch_size: 0`` (the
engine then evaluated nothing while health said SERVING), ``max_attempts: 0`` and negative
retry, timeout, poll, save and handover values. The config file and the environment refuse
them already; a settings object built otherwise went unchecked.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from aiaudit.alerting.settings import AlertingSettings
from aiaudit.common import config
from aiaudit.common.config import ConfigError

WHOLE = ("batch_size", "window_save_events", "max_attempts")
SECONDS = ("poll_interval", "handover_seconds", "webhook_timeout", "retry_base")


@pytest.mark.parametrize(
    ("name", "value"),
    [(n, v) for n in WHOLE for v in (0, -1, 2.5, True)]
    + [(n, v) for n in SECONDS for v in (0.0, -3.0, math.nan, math.inf)],
)
def test_a_setting_that_only_works_above_0_is_refused_naming_it(name: str, value: object) -> None:
    kind = "a positive whole number" if name in WHOLE else "a positive number"
    with pytest.raises(ConfigError) as info:
        AlertingSettings(**{name: value}).validate()  # type: ignore[arg-type]
    assert str(info.value).startswith(
        f"setting alerting.{name}: {value!r} is invalid: must be {kind} ("
    )


def test_the_defaults_and_small_positive_values_pass() -> None:
    AlertingSettings().validate()
    small = {n: 1 for n in WHOLE} | {n: 0.001 for n in SECONDS}
    dataclasses.replace(AlertingSettings(), **small).validate()  # type: ignore[arg-type]
    # What the config file gives (converted there) passes too.
    raw = {"batch_size": "1", "retry_base": "0.5", "handover_seconds": 2}
    built = config._build(AlertingSettings, raw, {}, "AIAUDIT_ALERTING_", "alerting.")
    built.validate()
    assert (built.batch_size, built.retry_base) == (1, 0.5)
