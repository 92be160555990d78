"""`/healthz`, `/readyz` and `/metrics` (Prometheus text format) on the console's port, and on a port of their
own (`[ops]`, `OpsServer`) so a replica without the web console is still probed and scraped.

The gauges are read from the shared database at scrape time (`core/ops.py` `figures`), so every replica
answers the same numbers; the chat counters are this process's own. None of the three pages names a person,
an address or a subject; they skip the sign-in guard (`bot/web/session.py`), and `/metrics` asks for
`Authorization: Bearer <token>` when the variable `[web].metrics_token_env` names holds one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edudesk.bot.web.render import OPEN, needs
from edudesk.bot.web.serving import Served
from edudesk.core.config import Settings
from edudesk.core.ops import CHAT_COUNTS, Beating, ChatCounters, Figures, figures, readiness
from edudesk.core.ports import Clock

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Watched:
    """What the three pages read: settings and clock, and besides the database this process's job worker
    (/readyz), when it runs one."""

    settings: Settings
    clock: Clock
    worker: Beating | None = None


WATCHED = web.AppKey("ops_watched", Watched)


def watch_worker(app: web.Application, worker: Beating) -> None:
    """Let /readyz see the job worker's heartbeat (called by the composition root)."""
    app[WATCHED].worker = worker


def families(data: Figures, chats: ChatCounters) -> Iterator[Metric]:
    """The metric families of one scrape."""
    mails = GaugeMetricFamily("edudesk_mails", "Mails in the intake ledger by source, state and outcome",
                              labels=["source", "state", "outcome"])
    for (source, state, outcome), n in sorted(data.mails.items()):
        mails.add_metric([source, state, outcome], n)
    yield mails
    jobs = GaugeMetricFamily("edudesk_jobs", "Jobs not done, by kind and state (pending, running, dead)",
                             labels=["kind", "state"])
    for (kind, state), n in sorted(data.jobs.items()):
        jobs.add_metric([kind, state], n)
    yield jobs
    oldest = GaugeMetricFamily("edudesk_jobs_oldest_due_seconds",
                               "How long the oldest due pending job of a kind has waited for a worker",
                               labels=["kind"])
    for kind, seconds in sorted(data.oldest_due.items()):
        oldest.add_metric([kind], seconds)
    yield oldest
    yield _by("edudesk_jobs_dead", "Dead jobs (out of attempts or refused for good), by kind", "kind",
              {kind: n for (kind, state), n in data.jobs.items() if state == "dead"})
    yield _by("edudesk_requests", "Requests by state", "state", data.requests)
    yield _by("edudesk_requests_overdue", "Open requests past their deadline (SLA breaches), by state", "state",
              data.overdue)
    yield GaugeMetricFamily("edudesk_signatures_last_minute", "Record signatures made in the last minute",
                            value=data.signatures_last_minute)
    yield _by("edudesk_provision_failed_rows", "People whose provisioning failed and is not yet done, by back end",
              "backend", data.failed_rows)
    errors = CounterMetricFamily("edudesk_provision_errors", "Failed directory changes in the account log, by back end",
                                 labels=["backend"])
    for backend, n in sorted(data.provision_errors.items()):
        errors.add_metric([backend], n)
    yield errors
    yield _by("edudesk_channel_failures", "Failures in a row of each intake or chat channel (0: healthy)", "channel",
              data.channels_failing)
    sent, throttled = chats.snapshot()
    for name, text, counts in (("edudesk_chat_sends", "Chat messages sent or edited by this process", sent),
                               ("edudesk_chat_throttled", "429 answers (too many requests) from chat platforms",
                                throttled)):
        family = CounterMetricFamily(name, text, labels=["surface"])
        for surface, n in sorted(counts.items()):
            family.add_metric([surface], n)
        yield family


def _by(name: str, text: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


class _Scrape(Collector):
    """Hands `generate_latest` the families read just before (the registry's collect is synchronous)."""

    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        """The families of this scrape."""
        return iter(self.found)


@needs(OPEN)
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers (nothing else is asked)."""
    return web.json_response({"status": "ok"})


@needs(OPEN)
async def readyz(request: web.Request) -> web.Response:
    """Ready: database, job worker, channels; 503 naming what fails."""
    c = request.app[WATCHED]
    result = await readiness(c.settings, worker=c.worker)
    return web.json_response(result.to_json(), status=200 if result.ok else 503)


@needs(OPEN)
async def metrics(request: web.Request) -> web.Response:
    """The figures in Prometheus' text format."""
    c = request.app[WATCHED]
    token = c.settings.secret(c.settings.web.metrics_token_env)
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    found = list(families(await figures(c.settings, c.clock), CHAT_COUNTS))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(found))
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, settings: Settings, clock: Clock) -> None:
    """The three operator pages."""
    app[WATCHED] = Watched(settings, clock)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def _plain_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


class OpsServer(Served):
    """Only the three operator pages on `[ops].host:port`: for probes and the scraper, whether or not this
    replica serves the web console. Nothing else is routed here, so no page that needs a sign-in is reachable on
    this port; no access log (a probe every few seconds is not news)."""

    what = "ops pages"

    def __init__(self, settings: Settings, clock: Clock) -> None:
        app = web.Application(client_max_size=1024)
        add_routes(app, settings, clock)
        app.on_response_prepare.append(_plain_headers)
        super().__init__(app, settings.ops.host, settings.ops.port, access_log=None)
