"""HTTP routers, one per concern: predict, feedback, admin, health (with /metrics)."""
