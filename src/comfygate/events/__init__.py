"""Event bus adapters: committed job changes and live progress, fanned out to streams."""

from __future__ import annotations
