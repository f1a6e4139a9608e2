"""Lambda functions served in-process by the real handlers in ``lambdas/``.

moto would start a container to run a function; instead a ``before-call.lambda.Invoke`` handler
runs the handler module in this process and answers as the Lambda service does: the handler's
JSON result as the payload, or ``FunctionError`` with ``errorType`` set to the exception's class
name, so Retry and Catch on error names behave as in AWS.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import threading
import traceback
import uuid
from collections import Counter
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from botocore.response import StreamingBody

from sandbox import clock, responses
from sandbox.faults import LambdaCrashed


class LambdaHost:
    def __init__(self, cost: Any = lambda: 0.0, iam: Any = None) -> None:
        self.cost = cost  # () -> modeled seconds one invocation takes (the latency model's lambda.invoke)
        self.iam = iam  # sandbox.iam_enforce.Enforcer: the handler's calls are checked against its role
        self.functions: dict[str, str] = {}  # function name -> lambdas module
        self.invocations: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()

    def in_function(self) -> bool:
        """Is the calling thread running one of the functions (a handler's own AWS calls)?"""
        return getattr(self._local, "function", None) is not None

    @contextlib.contextmanager
    def outside(self) -> Any:
        """Calls an observer makes from a function's thread (a hook watching its calls) are not the function's."""
        outer, self._local.function = getattr(self._local, "function", None), None
        try:
            with self.iam.acting_as(None) if self.iam is not None else contextlib.nullcontext():
                yield
        finally:
            self._local.function = outer

    def register(self, function_name: str, module: str) -> str:
        importlib.import_module(f"lambdas.{module}")  # fail at deploy time, not at first call
        self.functions[function_name] = module
        return function_name

    def install(self, events: Any) -> None:
        events.register("before-call.lambda.Invoke", self._invoke, unique_id="pilotlight-lambda-host")

    def uninstall(self, events: Any) -> None:
        events.unregister("before-call.lambda.Invoke", unique_id="pilotlight-lambda-host")

    def _invoke(self, params: dict[str, Any], **_: Any) -> Any:
        # url_path: /2015-03-31/functions/<name or ARN, url-quoted>/invocations
        target = unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
        name = target.rsplit(":function:", 1)[-1].split(":", 1)[0]
        module = self.functions.get(name)
        if module is None:
            return responses.error("ResourceNotFoundException", f"Function not found: {target}", 404)
        body = params.get("body") or b"{}"
        event = json.loads(body.decode() if isinstance(body, bytes) else body)
        with self._lock:
            self.invocations[f"{module}.{event.get('action')}"] += 1
        context = SimpleNamespace(aws_request_id=str(uuid.uuid4()), function_name=name)
        handler = importlib.import_module(f"lambdas.{module}").handler
        clock.charge(self.cost())  # a state machine's invocation takes modeled time; a test's own call does not
        outer, self._local.function = getattr(self._local, "function", None), name
        try:
            with self.iam.acting_as(name) if self.iam is not None else contextlib.nullcontext():
                result = handler(event, context)
        except LambdaCrashed as exc:
            # The runtime's own report is Runtime.ExitError (or Sandbox.Timedout); Step Functions names any
            # such unhandled end Lambda.Unknown, and moto's interpreter takes the name from errorType.
            payload = {"errorType": "Lambda.Unknown", "errorMessage": str(exc)}
            return responses.ok({"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _stream(payload)})
        except Exception as exc:  # reported to the caller exactly like the Lambda runtime does
            payload = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
            return responses.ok({"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _stream(payload)})
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit, a test's stand-in calling pytest.fail...
            # The runtime exits (Runtime.ExitError): the task fails as Lambda.Unknown. Were it let through, it would
            # end the interpreter's task thread without a word and leave the execution waiting forever.
            payload = {"errorType": "Lambda.Unknown",
                       "errorMessage": f"Runtime exited: {type(exc).__name__}: {exc}"[:1024]}
            return responses.ok({"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _stream(payload)})
        finally:
            self._local.function = outer
        return responses.ok({"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": _stream(result)})


def _stream(document: Any) -> StreamingBody:
    raw = json.dumps(document, default=str).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))
