"""Synapse partner assignment: point-trained models applied to every synapse of a volume, voted over a
segmentation, at scale on Dask (`assign_synapses`)."""
