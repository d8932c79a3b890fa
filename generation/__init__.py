"""The rules of making a video, from a member's request to a delivered job, with no Discord in them.

The cogs turn an interaction into a call here and the answer back into a message; this package decides.
It may use :mod:`storage` (the database), :mod:`ulazai` (the provider) and :mod:`telemetry` (the
operator's metrics) and nothing above them:

* :mod:`generation.shapes`: the one mapping between a request's shapes (the member's options, the
  provider's :class:`~ulazai.requests.VideoSpec`, storage's :class:`~storage.JobRequest`, a stored job);
* :mod:`generation.checks`: the rules of a request that are not the provider's (channel, bot
  permissions, blocklist, active jobs, balance, bans), each refusal a typed :class:`~generation.refusals.Refusal`;
* :mod:`generation.requesting`: the request flow's steps that touch storage and the provider;
* :mod:`generation.blocklist`: prompt matching against the server's blocklist;
* :mod:`generation.outcomes`: what a generate, status or posting outcome does to a job, as plain
  functions over plain values (backoff, timeouts, settlement arithmetic);
* :mod:`generation.worker`: those decisions applied to storage, for the delivery worker;
* :mod:`generation.iterating`: Continue, Remix and Animate with Kling: what members type into their
  modals, and a continuation's start frame;
* :mod:`generation.eta`: when a video should be ready, for its status card;
* :mod:`generation.quotes`: when a request shows its price first, what a quote keeps, who may decide it;
* :mod:`generation.breaker`: the provider circuit breaker (a 401/402 pauses the line, one probe per
  interval, the first accepted generate resumes it);
* :mod:`generation.metering`: what each job event counts in the metrics;
* :mod:`generation.usage` and :mod:`generation.usage_chart`: the usage report's figures, CSV and chart.
"""
