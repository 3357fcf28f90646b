"""Integrations with other libraries, each an optional extra imported on demand.

- :mod:`annx.integrations.langchain`: :class:`~annx.integrations.langchain.AnnxVectorStore`,
  a LangChain vector store (``pip install "annx[langchain]"``).
- :mod:`annx.sklearn`: :class:`~annx.sklearn.KNNTransformer` (``pip install "annx[sklearn]"``).

``import annx`` imports none of them.
"""
