"""medrag.scale: the Ray engine (``ray_engine``) that runs ingest units, BM25 parts and encoding shards as
Ray Data stages.

It sits just above the foundation (config, errors) and below ``ingest`` and ``index``: it knows how to map
work items over Ray tasks or actors, not what the work is. ``ingest`` and ``index`` hand it their own work
functions (module-level classes, picklable by reference), so no arrow points from a lower layer to a higher
one and nothing imports in a cycle.
"""
