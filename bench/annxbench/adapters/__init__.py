"""One module per library. Each defines :class:`~.base.Adapter` subclasses: ``build(ds,
threads)``, ``search(queries, k, **params)`` (ids, -1 for missing, on ``self.threads``
threads), ``bytes_per_vector()`` and ``version()``. A missing library raises
:class:`~.base.Skip` when the adapter is made, so a run without peers still works."""
