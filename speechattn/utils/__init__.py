"""The bottom layer: helpers with no speech in them (atomic files, data-root paths, devices and
precision, process groups, optional dependencies). Nothing here imports another part of speechattn."""
