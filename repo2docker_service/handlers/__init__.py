"""Thin Tornado handlers: parse, check the scope, call one method, serialize."""

from . import api, builds, pages

default_handlers = [*api.default_handlers, *builds.default_handlers, *pages.default_handlers]
