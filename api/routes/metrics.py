"""GET /metrics: the service's figures for Prometheus to scrape."""

from fastapi import Response

from api import metrics
from api.db import Db
from api.routes import Routes

routes = Routes(tags=["probes"])


class PrometheusText(Response):
    media_type = metrics.CONTENT_TYPE


@routes.get(
    "/metrics",
    response_class=PrometheusText,
    responses={200: {"description": "Prometheus's text exposition format (METRICS=false: 404)."}},
)
async def prometheus_metrics(db: Db) -> PrometheusText:
    """Requests, the pool and 503s of every worker, in Prometheus's text format."""
    metrics.publish(db)  # this worker's figures as of now; the others' are at most a second old
    return PrometheusText(metrics.exposition())
