"""The napari plugin: dock widget, tabs, workers, reader, sample data (the only package that imports Qt)."""
