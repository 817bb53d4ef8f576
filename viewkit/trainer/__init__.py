"""A lean SSL trainer: one loop (loop.py), one small file per method, configs in YAML."""
