"""Parity tests: the authors' reference implementations against ours (see reference.py)."""
