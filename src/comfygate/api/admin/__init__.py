"""The admin API under ``/v1/admin``: what the ops dashboard reads and does.

Kept free of imports so ``api/deps.py`` can use :mod:`.credentials` without a cycle.
"""
