"""Data layer: sources -> data contract -> quarantine / content-addressed dataset snapshots."""
