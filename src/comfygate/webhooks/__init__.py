"""Webhook delivery: Standard Webhooks signatures and the dispatcher that drains the
outbox (the outbox itself is ``store/webhooks.py``; the domain ``jobs/webhooks.py``)."""
