"""Events after the transaction: the bus and its adapters that fan committed changes and
live progress out across gateways, and the streams a client follows (one job, or all
of an owner's, with the cursor that resumes it) as plain async iterators; the API only
frames them as SSE."""

from __future__ import annotations
