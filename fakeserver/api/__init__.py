"""The fake's REST handlers: one module per resource family, each registering its routes.

A handler is ``def handler(ctx: Ctx, **url_args) -> Response`` decorated with
:func:`route`. Importing this package imports every module in it, so adding a module is all
it takes to add endpoints.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    handler: Handler
    untrusted: bool


ROUTES: list[Route] = []


def route(path: str, *methods: str, untrusted: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``methods`` on ``path`` (Werkzeug rule syntax).

    ``untrusted=True`` lets untrusted TLS clients reach the handler, which then decides
    what they may see; every other route answers them 403 ``not authorized``.
    """

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(path, tuple(methods), handler, untrusted))
        return handler

    return register


def load() -> list[Route]:
    """Import every handler module (once) and return the route table."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return ROUTES
