"""Site workers on Celery: one rollout across sites (docs/scale.md).

The coordinator (``apply --executor celery``) keeps the rollout (canary, batches, failure
threshold, Ctrl-C, report) and sends each batch's hosts of a site as one chunk
(:mod:`.message`, JSON) to the site's queue (:mod:`.coordinator`); a site worker
(``fleetbr worker --site SITE``, :mod:`.worker`) checks the chunk against its own inventory and
configuration, claims every host in the shared history before it stages anything, and runs the
same per-host transaction as a local run. Celery is imported only here, and only when used.
"""
