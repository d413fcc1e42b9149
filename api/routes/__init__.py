"""The routes, declared beside their functions and added to the app itself, not through an included router.

FastAPI 0.165 dispatches every request to an included APIRouter's routes through a wrapper route of its
own (docs/levers.md, "routes on the app"); routes added to the app's own router with FastAPI's public
`add_api_route` are the same routes without that wrapper.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Routes:
    """A list of path operations to add to an app: `@routes.get(path, **options)` as on an APIRouter."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults  # for every route of the list, as an APIRouter's (tags, say)
        self.declared: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        def declare(endpoint: Endpoint) -> Endpoint:
            self.declared.append((method, path, endpoint, self.defaults | options))
            return endpoint

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("POST", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("DELETE", path, **options)

    def add_to(self, app: FastAPI) -> None:
        for method, path, endpoint, options in self.declared:
            app.add_api_route(path, endpoint, methods=[method], **options)
