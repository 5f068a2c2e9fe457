"""aiaudit search."""
