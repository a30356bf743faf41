"""ProjectSession: while a long task runs, the heap that existed at its start is out of garbage collection
(a full collection over it blocked the GUI thread for 100-340 ms)."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def session():
    from napari_training_assistant.napari.session import ProjectSession

    session = ProjectSession()
    yield session
    if session.busy:
        session.set_busy(False)


def test_busy_freezes_the_existing_heap_and_idle_releases_it(session):
    before = gc.get_freeze_count()
    session.set_busy(True)
    frozen = gc.get_freeze_count()
    assert frozen > before
    session.set_busy(True)  # a repeated busy signal changes nothing
    assert gc.get_freeze_count() == frozen
    session.set_busy(False)
    assert gc.get_freeze_count() == 0
    session.set_busy(False)
    assert gc.get_freeze_count() == 0


def test_busy_signal_is_emitted(session):
    seen = []
    session.busy_changed.connect(seen.append)
    session.set_busy(True)
    session.set_busy(False)
    assert seen == [True, False]
