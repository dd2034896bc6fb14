"""Thin CLIs over mixmin_core: ``python -m jobs run CONFIG`` and ``python -m jobs status``."""
