"""Thin Tornado handlers: parse, check the scope, call one method, serialize."""

from . import api, binder, builds, images, launch, pages, spawn, webhooks

default_handlers = [
    *api.default_handlers,
    *builds.default_handlers,
    *images.default_handlers,
    *spawn.default_handlers,
    *launch.default_handlers,
    *binder.default_handlers,
    *webhooks.default_handlers,
    *pages.default_handlers,
]
# last: any other api/ path answers a JSON 404
default_handlers.append((r"api/.*", api.NotFoundAPIHandler))
#: after every other route (also the binder prefix's): the error page in the hub's look
fallback_handlers = [(r".+", pages.NotFoundPageHandler)]
#: what the second prefix (``binder_prefix``, e.g. /services/binder/) serves
binder_handlers = list(binder.binder_handlers)
