"""The sync and asyncio clients are one API: same public methods with the same signatures, and the
unary ones are written once, in digits.calls (the clients only send the call and wait)."""

from __future__ import annotations

import inspect

import pytest

from digits import AsyncDigitsClient, DigitsClient, calls

PUBLIC = sorted(name for name, member in vars(DigitsClient).items()
                if not name.startswith("_") and callable(member) and name not in ("close", "wait_for_server"))
UNARY = sorted(set(PUBLIC) - {"classify_stream"})


def test_both_clients_have_the_same_public_methods() -> None:
    ours = {name for name, member in vars(AsyncDigitsClient).items() if not name.startswith("_") and callable(member)}
    assert set(PUBLIC) <= ours and len(UNARY) >= 11


@pytest.mark.parametrize("name", PUBLIC)
def test_signatures_are_identical(name: str) -> None:
    """Names, kinds and defaults (annotations may differ: the async stream also takes async iterables)."""
    sync, aio = (
        [(p.name, p.kind, p.default) for p in inspect.signature(getattr(client, name)).parameters.values()]
        for client in (DigitsClient, AsyncDigitsClient)
    )
    assert sync == aio


@pytest.mark.parametrize("name", UNARY)
def test_each_unary_method_is_built_once_in_calls(name: str) -> None:
    builder = getattr(calls, name)
    for client in (DigitsClient, AsyncDigitsClient):
        source = inspect.getsource(getattr(client, name))
        assert f"calls.{name}(" in source and "_run(" in source, f"{client.__name__}.{name} builds its own request"
    # the builder takes the method's arguments (without self and the per-call timeout), in order
    method = [p for p in inspect.signature(getattr(DigitsClient, name)).parameters if p not in ("self", "timeout")]
    assert list(inspect.signature(builder).parameters) == method
