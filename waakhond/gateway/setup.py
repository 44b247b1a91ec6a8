"""Wiring: one function builds a gateway from settings, so the CLI, the API and the tests all
get the same parts (and tests swap in fakes where they need to)."""

from __future__ import annotations

from waakhond.config import GatewaySettings, ScreeningSettings, data_folder
from waakhond.consent.matcher import RegistryMatcher
from waakhond.gateway.access import ApiKeys, EndUsers
from waakhond.gateway.records import DecisionLog, GenerationLog
from waakhond.gateway.service import Gateway
from waakhond.gateway.upstream import DemoUpstream, OpenAIUpstream, Upstream
from waakhond.hashing.banks import BankService
from waakhond.hashing.matcher import HashMatcher
from waakhond.provenance.marker import Marker
from waakhond.screening import Screener
from waakhond.store import Database


def upstream_from(settings: GatewaySettings) -> Upstream:
    if not settings.upstream_url:
        return DemoUpstream()
    return OpenAIUpstream(settings.upstream_url, settings.upstream_key or None,
                          settings.upstream_timeout_s)


def build_gateway(settings: GatewaySettings, db: Database | None = None,
                  screener: Screener | None = None,
                  upstream: Upstream | None = None) -> Gateway:
    db = db or Database()
    if screener is None:
        screener = Screener(ScreeningSettings.from_env(),
                            matcher=HashMatcher(BankService(db)),
                            registry_matcher=RegistryMatcher(db))
    return Gateway(
        screener=screener,
        upstream=upstream or upstream_from(settings),
        marker=Marker.from_settings(settings, data_folder()),
        decisions=DecisionLog(db, settings.evidence_key or None),
        generations=GenerationLog(db),
        keys=ApiKeys(db),
        users=EndUsers(db),
    )
