"""Which URLs a job may name as its webhook: checked at submit, so a bad one is a 422."""

from __future__ import annotations

from comfygate.ssrf import AddressGuard


class WebhookUrlCheck:
    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def check(self, url: str) -> None:
        await self.guard.check_url(url, http_if_listed=True)
