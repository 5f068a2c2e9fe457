"""aiaudit common."""
