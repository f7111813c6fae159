"""`make conformance`: the legacy gateway's conformance cases against the platform, with every
process and stand-in provider started (and stopped) by `python -m scripts.conformance.run`."""
