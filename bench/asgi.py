"""BENCH ONLY: Cirkelline's ASGI application as the harness serves it, with the loop statistics.

    python -m daphne bench.asgi:application        # what bench/servers.py starts

The product's `cirkelline_site.asgi:application`, wrapped by bench.loopstats when
`CIRKELLINE_STATS_DIR` is set (the harness always sets it); the product itself carries no
benchmark code.
"""

from django.conf import settings

from cirkelline_site.asgi import application as _product

from .loopstats import instrument

application = instrument(_product, settings.CIRKELLINE_STATS_DIR) if settings.CIRKELLINE_STATS_DIR else _product
