"""The gateway SDK: log AI interactions to aiaudit with no loss and no duplicate."""

from aiaudit.sdk.logger import AuditLogger

__all__ = ["AuditLogger"]
