"""`models/imported/` and `model_registry.json`: pretrained weights brought into the project."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import now
from .errors import CheckpointError
from .rebuild import write_sidecar
from .schemas import ImportedModel, ModelRegistry
from .storage import atomic_copy, write_model

if TYPE_CHECKING:
    from .handle import ProjectFiles
    from .weights_file import WeightsInfo


def sanitise_filename(name: str) -> str:
    """Letters, digits, dot, dash and underscore only; never a path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "weights"
    return stem[:80]


class ImportedModels:
    def __init__(self, project: ProjectFiles):
        self._project = project
        self._layout = project.layout

    @property
    def registry(self) -> ModelRegistry:
        return self._project.read(self._layout.model_registry, ModelRegistry)

    def get(self, model_id: str) -> ImportedModel:
        model = self.registry.get(model_id)
        if model is None:
            known = ", ".join(m.model_id for m in self.registry.models) or "none"
            raise CheckpointError(f"no imported model {model_id!r} (imported: {known})")
        return model

    def path_of(self, model_id: str) -> Path:
        return self._layout.absolute(self.get(model_id).path)

    def add(
        self,
        source: Path,
        info: WeightsInfo,
        architecture: dict[str, Any],
        key_prefix_stripped: str = "",
        package: dict[str, Any] | None = None,
    ) -> ImportedModel:
        """Copy an inspected, checked weights file into the project and record it; weights from a package are
        named after it (`package["name"]`, `package["source"]`) and carry its record."""
        filename = str(package["source"]) if package else source.name
        with self._project.locked():
            registry = self.registry
            duplicate = next((m for m in registry.models if m.sha256 == info.sha256), None)
            if duplicate is not None:
                raise CheckpointError(f"{filename} is already imported as {duplicate.model_id} (same sha256)")
            model_id = f"imported_{registry.next_number:03d}"
            suffix = ".safetensors" if info.format == "safetensors" else ".pt"
            target = self._layout.imported_dir / f"{model_id}_{sanitise_filename(Path(filename).stem)}{suffix}"
            atomic_copy(source, target)
            record = ImportedModel(
                model_id=model_id,
                name=str(package["name"]) if package else Path(filename).stem,
                source_filename=filename,
                path=self._layout.relative(target),
                sha256=info.sha256,
                format=info.format,
                architecture=architecture,
                imported_at=now(),
                tensor_count=len(info.tensors),
                key_prefix_stripped=key_prefix_stripped,
                package=package,
            )
            write_sidecar(target, record)  # the registry can be rebuilt from it (nta doctor)
            registry.models.append(record)
            registry.next_number += 1
            write_model(self._layout.model_registry, registry)
        return record

