"""SAM3 annotation: model-folder validation, prompts, backends (sam3 package, transformers, SAM3.1
multiplex) behind one interface, and accepting a preview into the project's dataset."""
