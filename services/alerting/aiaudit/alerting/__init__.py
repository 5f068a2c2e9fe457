"""aiaudit alerting."""
