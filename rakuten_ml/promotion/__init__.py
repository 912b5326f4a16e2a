"""Promotion: registry aliases, evaluation gate, A/B routing and decisions, rollback."""
