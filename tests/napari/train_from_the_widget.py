"""Run by test_train_tab in a fresh process: a short pair training from the widget's Train tab on the
project folder given as argument. Prints one JSON line: the run's status, this process's pid and the
child's, the child's exit code, and which modules of the training stack this (GUI) process has
imported (torch itself is reported apart: the Advanced tab's live architecture summary counts layers
of a U-Net built on torch's meta device)."""

from __future__ import annotations

import json
import os
import sys

TRAINING_STACK = ("lightning", "napari_training_assistant.train", "napari_training_assistant.predict", "napari_training_assistant.assign")


def main(project_root: str) -> dict:
    import napari
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    viewer = napari.Viewer(show=False)
    widget = TrainingAssistantWidget(viewer)
    widget.session.open(project_root)
    tab = widget.page("Train")
    tab.epochs.setValue(1)
    tab.samples.setValue(4)
    tab.batch.setValue(2)
    tab.device.setCurrentText("cpu")
    if not tab.start():
        raise SystemExit(f"not started: {tab.message.text()}")
    tab.wait(540)
    result, task = tab.last_result, tab.last_task
    report = {
        "status": result.status if result is not None else tab.message.text(),
        "pid": os.getpid(),
        "child_pid": task.pid if task is not None else None,
        "exit_code": task.exit_code if task is not None else None,
        "imported": [name for name in TRAINING_STACK if name in sys.modules],
        "torch": "torch" in sys.modules,
    }
    widget.close()
    viewer.close()
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
