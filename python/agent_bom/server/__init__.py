"""The ingestion server: authenticated, tenant-isolated, chained (``agent-bom serve``).

Needs the server extra: ``pip install 'agent-bom[server]'``.
"""
