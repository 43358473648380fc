"""Targets for the reference checks in the bad suites: what exists, so the suites can name what does not."""

import json as _json  # noqa: F401 - an import is a top-level name too


def step(x):
    return x


def inputs():
    return [((1.0,), {})]


FACTOR = 2
