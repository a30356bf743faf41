"""ProjectSession: the busy state is a flag and a signal. It no longer freezes the heap out of garbage
collection: runs allocate in their child process, and bench_gui_latency.py saw no full collection in the
GUI process during a run."""

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


def test_busy_leaves_the_garbage_collector_alone(session):
    before = gc.get_freeze_count()
    session.set_busy(True)
    assert session.busy and gc.get_freeze_count() == before and gc.isenabled()
    session.set_busy(False)
    assert not session.busy and gc.get_freeze_count() == before


def test_busy_signal_is_emitted(session):
    seen = []
    session.busy_changed.connect(seen.append)
    session.set_busy(True)
    session.set_busy(False)
    assert seen == [True, False]
