"""The workers' event loops: uvloop's where it is installed, the standard library's when asked for."""

from __future__ import annotations

import asyncio
import sys

import pydantic
import pytest
import uvloop

from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.asyncrunner import AsyncRunner, loop_factory
from notifyd.runtime.settings import Settings


def _loop_type(runner: AsyncRunner) -> type:
    try:
        return runner.call(lambda: type(asyncio.get_running_loop()))
    finally:
        runner.stop()


def test_a_runner_runs_on_uvloop_by_default_where_it_is_installed():
    assert _loop_type(AsyncRunner()) is uvloop.Loop


def test_a_runner_asked_for_asyncio_runs_on_the_standard_librarys_loop():
    loop_type = _loop_type(AsyncRunner(loop="asyncio"))
    assert issubclass(loop_type, asyncio.BaseEventLoop)
    assert loop_type is not uvloop.Loop


def test_a_workers_adapter_pools_both_use_the_configured_loop():
    for choice, expected in (("asyncio", False), ("auto", True)):
        pool = AdapterPool(Settings(event_loop=choice))
        try:
            sibling = pool.sibling()  # the urgent lanes' loop
            on_uvloop = [
                pool.runner.call(lambda: isinstance(asyncio.get_running_loop(), uvloop.Loop)),
                sibling.runner.call(lambda: isinstance(asyncio.get_running_loop(), uvloop.Loop)),
            ]
        finally:
            pool.close()
        assert on_uvloop == [expected, expected], choice


def test_without_uvloop_auto_falls_back_to_asyncio_and_uvloop_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an install without it sees
    assert loop_factory("auto") is asyncio.new_event_loop
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_an_unknown_event_loop_setting_is_refused():
    with pytest.raises(pydantic.ValidationError, match="event_loop"):
        Settings(event_loop="trio")
