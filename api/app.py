"""The FastAPI application: routes, the pool's lifespan, error handling and the body limit."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.db import State, lifespan
from api.limits import BodyLimitMiddleware
from api.problems import PROBLEM_JSON, install_problem_handlers
from api.routes import health, users
from api.settings import Settings
from api.worker import stops_with_its_parent


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; uvicorn calls this as a factory in every worker."""
    settings = settings or Settings()
    app = FastAPI(
        title="users-api",
        version="0.1.0",
        summary="A users resource on PostgreSQL, in raw SQL.",
        lifespan=_serving(settings),
        # operationId = the route function's name (create_user, get_user, ...): what generated clients call
        # their methods, rather than FastAPI's default of name, path and method run together.
        generate_unique_id_function=lambda route: route.name,
        # FastAPI's native OpenTelemetry looks for a configured provider on every request, 5% of a
        # get-one's instructions (bench/levers.md); users-api exports no telemetry yet, so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    users.routes.add_to(app)
    health.routes.add_to(app)
    app.add_middleware(BodyLimitMiddleware)
    install_problem_handlers(app)
    _document_problems_as_problem_json(app)
    return app


def _serving(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    """The lifespan: the pool while the app serves, in a worker that stops when its parent is gone."""
    pool = lifespan(settings)

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[State]:
        with stops_with_its_parent():
            async with pool(app) as state:
                yield state

    return serving


def _document_problems_as_problem_json(app: FastAPI) -> None:
    """Error responses are documented under application/problem+json, the media type they are sent with."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema["paths"].values():
                for operation in path.values():
                    for code, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if code[0] in "45" and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
