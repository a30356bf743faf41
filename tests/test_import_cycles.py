"""No module of the package imports, directly or through others, a module that imports it back (imports inside
functions and under TYPE_CHECKING included, as grimp sees them; the package root counts as a module). The
import-linter contracts in pyproject.toml keep the layers; this keeps the whole module graph acyclic."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

import grimp


def test_the_module_import_graph_has_no_cycle():
    graph = grimp.build_graph("napari_training_assistant", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        TopologicalSorter(imports).prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        raise AssertionError(f"import cycle {' -> '.join(cycle)}: move what these modules share one level down") from None
