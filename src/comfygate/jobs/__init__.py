"""The job domain: states, transitions, the store port and the services over it.

Imports no web or database framework and never imports ``comfygate.store``.
"""

from __future__ import annotations
