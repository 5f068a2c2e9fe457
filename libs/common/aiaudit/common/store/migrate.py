"""Schema migrations (Alembic), run by `aiaudit db migrate` or at embedded start-up."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

_SCRIPTS = Path(__file__).with_name("migrations")


def migrate(engine: sa.Engine) -> None:
    """Upgrades the database to the newest schema; a no-op when it is current.

    Each service that owns tables keeps its migrations on its own Alembic
    branch (``branch_labels``) rooted at ``0001``; all heads are applied.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
