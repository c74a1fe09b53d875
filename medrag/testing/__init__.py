"""Test support shipped with medrag (not for production use).

:mod:`medrag.testing.standin_r1` — an R1-style STAND-IN for an 8B medical reasoning model behind an
OpenAI-compatible server (rules, not a model), used by medrag's end-to-end tests and ``eval/bench_ask.py``.
"""
