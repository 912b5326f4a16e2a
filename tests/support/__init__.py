"""Helpers shared by the test modules of every kind (no tests here)."""
