"""annx's benchmark harness: datasets, library adapters, families of configurations with
their sweeps, interleaved timing and reports. ``bench/run.py`` is the entry point."""
