"""What operators graph and alert on: Prometheus metrics and a health answer over HTTP.

Knows nothing of Discord or the database: :mod:`telemetry.metrics` holds one process's instruments
(its own registry, so several bots in one test process never mix their counts), and
:mod:`telemetry.server` serves ``/metrics`` and ``/healthz`` when ``METRICS_PORT`` is set. The bot
wires in what they read (the worker's heartbeat, the gateway, the database's gauges); the rules of what
to count sit with the code that does the counted thing (``generation.metering``).
"""
