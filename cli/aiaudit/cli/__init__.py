"""aiaudit cli."""
