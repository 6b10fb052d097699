"""Use cases. Each owns its transaction and runs without any web framework."""
