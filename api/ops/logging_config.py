"""Where log lines go and how they look: LOG_LEVEL and LOG_FORMAT, for the command and every uvicorn worker."""

from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS


def logging_config(level: str, log_format: Literal["text", "json"]) -> dict[str, Any]:
    """A `logging.config.dictConfig`: one handler on stderr, for users-api's lines and uvicorn's alike.

    uvicorn applies it in each worker it spawns (a spawned process keeps nothing of its parent's
    logging), and the command applies it to itself. Every line written while a request is answered
    gets the request's trace id (api.logs.RequestContext).
    """
    formatter: dict[str, Any] = {"()": "api.logs.TextFormatter"}
    if log_format == "json":
        formatter = {
            "()": "api.logs.JsonLines",
            "fmt": "{levelname}{name}{message}",
            "style": "{",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
            # uvicorn's records carry their message again with terminal colours: not for a JSON line.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "api.logs.request_context"}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "()": "api.logs.BatchedLines",
                "formatter": "default",
                "filters": ["request"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own loggers: through the root's handler rather than theirs.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # users-api writes one line per request itself, with its route template and duration.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
