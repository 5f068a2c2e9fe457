"""aiaudit integrity."""
