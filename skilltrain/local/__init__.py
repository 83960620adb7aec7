"""The embedded local model."""
