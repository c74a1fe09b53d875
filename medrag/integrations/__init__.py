"""Plug medrag into other applications.

Each integration is an optional extra and is imported only when you import its module:

* :mod:`medrag.integrations.llama_index` — ``MedragRetriever`` (a llama-index ``BaseRetriever``) and
  ``MedragLLM`` (any medrag LLM as a llama-index ``CustomLLM``); ``pip install 'medrag[llamaindex]'``.
* :mod:`medrag.integrations.langchain` — ``MedragRetriever`` (a ``langchain_core`` ``BaseRetriever``);
  ``pip install 'medrag[langchain]'``.
* :mod:`medrag.integrations.server` — ``create_app`` (FastAPI: ``/search``, ``/batch_search``, ``/ask``,
  ``/ask/stream``, ``/health``); ``medrag serve``; ``pip install 'medrag[serve]'``.
* :mod:`medrag.integrations.mcp_server` — an MCP tool server with ``search`` and ``ask``; ``medrag mcp``;
  ``pip install 'medrag[mcp]'``.

``import medrag.integrations`` itself imports none of them.
"""
