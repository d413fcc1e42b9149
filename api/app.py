"""The FastAPI application: routes, the pool's lifespan, error handling, the body limit, what operators see."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from api import tracing
from api.access import Access
from api.db import State, lifespan
from api.edge import Edge
from api.keys import KeySet, kept_fresh
from api.metrics import published
from api.problems import install_problem_handlers
from api.replicas import reading_from_replicas
from api.routes import health, metrics, users
from api.routes.openapi import document_every_response
from api.settings import Settings
from api.tokens import Verifier
from api.worker import collects_rarely, stops_with_its_parent

OPENAPI_URL = "/openapi.json"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; uvicorn calls this as a factory in every worker."""
    settings = settings or Settings()
    exported = tracing.exported()
    keys = KeySet(settings.auth_issuer, settings.auth_jwks_url) if settings.auth_issuer else None
    app = FastAPI(
        title="users-api",
        version="0.1.0",
        summary="A users resource on PostgreSQL, in raw SQL.",
        lifespan=_serving(settings, exported, keys),
        # operationId = the route function's name (create_user, get_user, ...): what generated clients call
        # their methods, rather than FastAPI's default of name, path and method run together.
        generate_unique_id_function=lambda route: route.name,
        # FastAPI's native OpenTelemetry: on for the signals OTEL_* exports, off otherwise: unconfigured, it
        # looks for a provider on every request (docs/levers.md, "telemetry off while nothing is exported").
        telemetry=tracing.telemetry_config(exported),
        openapi_url=None,  # for now: FastAPI would add its documentation's routes first (below)
    )
    users.routes.add_to(app)
    health.routes.add_to(app)
    if settings.metrics:
        metrics.routes.add_to(app)
    # A request is matched against the routes in order: the documentation's four come after the service's,
    # which a get-one reaches in three tries instead of seven (docs/levers.md, "the service's routes first").
    app.openapi_url = OPENAPI_URL
    app.setup()
    access = None
    if keys is not None:
        if not settings.auth_audience:  # Settings refuse it; here too, rather than serve with no one checked
            raise ValueError("AUTH_ISSUER is set without AUTH_AUDIENCE")
        access = Access(Verifier(keys, settings.auth_audience, settings.algorithms, settings.token_types))
    app.add_middleware(Edge, metered=settings.metrics, traced="TRACES" in exported, access=access)
    install_problem_handlers(app)
    document_every_response(app, authenticated=access is not None)
    return app


class ServingState(State):
    """What every request's `request.state` holds: the database, the issuer's keys, the settings routes read."""

    keys: KeySet | None  # AUTH_ISSUER's, fetched while the app serves; None: nothing authenticated
    require_if_match: bool  # REQUIRE_IF_MATCH


def _serving(
    settings: Settings, exported: set[str], keys: KeySet | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[ServingState]]:
    """The lifespan: the pool (and the issuer's keys) while the app serves, in a worker that stops when its
    parent is gone."""
    pool = lifespan(settings, traced="TRACES" in exported)

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[ServingState]:
        # What the start made so far (the app, its routes and models, the imports) frozen out of collections:
        # the pool's connections stay collectable, for they are replaced in time.
        with stops_with_its_parent(), tracing.sql_spans(exported), collects_rarely(settings.gc_young_threshold):
            async with AsyncExitStack() as running:
                state = await running.enter_async_context(pool(app))
                if settings.replica_urls:
                    traced = "TRACES" in exported
                    await running.enter_async_context(reading_from_replicas(state["database"], settings, traced))
                if settings.metrics:
                    await running.enter_async_context(published(state["database"]))
                if keys is not None:
                    await running.enter_async_context(kept_fresh(keys))
                yield ServingState(database=state["database"], keys=keys, require_if_match=settings.require_if_match)

    return serving
