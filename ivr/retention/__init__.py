"""Retention: each practice's old recordings and records purged, every run logged."""
