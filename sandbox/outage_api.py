"""A region's API endpoint that does not answer, as a regional outage looks to a client.

Inside :func:`region_unreachable` every call a boto3 client makes to ``service`` in ``region`` fails the way
botocore fails when the endpoint cannot be reached: ``EndpointConnectionError`` (raised once botocore's own
retries are spent; here at once). The handlers are not told: they see what they would see in AWS (lambdas/
common.py maps it to the retryable ``AwsUnavailable``; a probe of the primary region takes it as "no answer").

Usage (``sb`` a running :class:`sandbox.Sandbox`)::

    with region_unreachable(sb, "us-east-1", "rds"):
        ...  # calls to RDS in us-east-1, from the functions and from the test, fail to connect
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import EndpointConnectionError

_ids = itertools.count()


def _events(sandbox: Any) -> Any:
    events = getattr(sandbox, "_events", None)
    return events if events is not None else boto3.DEFAULT_SESSION.events


@contextlib.contextmanager
def region_unreachable(sandbox: Any, region: str, service: str = "*") -> Iterator[None]:
    """Calls to ``service`` (botocore's event name for it, e.g. ``rds``; ``*`` for all) in ``region`` fail to
    connect until the block ends."""
    events = _events(sandbox)
    event = "before-call" if service == "*" else f"before-call.{service}"
    unique_id = f"pilotlight-outage-{next(_ids)}"

    def refuse(model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.get("client_region") != region:
            return
        prefix = model.service_model.endpoint_prefix
        raise EndpointConnectionError(endpoint_url=f"https://{prefix}.{region}.amazonaws.com/")

    events.register_first(event, refuse, unique_id=unique_id)
    try:
        yield
    finally:
        events.unregister(event, unique_id=unique_id)
