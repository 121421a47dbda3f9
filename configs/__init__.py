"""Default run configurations, one YAML per task, shipped as package data."""
