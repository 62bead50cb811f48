"""The admin parts the gateway holds, in one place: sessions, backend view, counts."""

from __future__ import annotations

from dataclasses import dataclass

from comfygate.admin.backends import BackendMonitor, ComfyProber
from comfygate.admin.session import AdminSessions
from comfygate.clock import Clock
from comfygate.config import Settings
from comfygate.jobs.stats import StatsStore


@dataclass
class AdminConsole:
    sessions: AdminSessions
    monitor: BackendMonitor
    stats: StatsStore

    async def aclose(self) -> None:
        await self.monitor.aclose()


def build_console(settings: Settings, stats: StatsStore, clock: Clock) -> AdminConsole:
    return AdminConsole(
        sessions=AdminSessions(
            token=settings.admin_key(),
            key=settings.signing_key(),
            clock=clock,
            ttl_s=settings.admin_session_ttl_s,
        ),
        monitor=BackendMonitor(ComfyProber(clock), clock),
        stats=stats,
    )
