"""Each Beanstalk environment's URL served by a loopback HTTP server that answers as the environment is.

When an environment is created (the seed's primary environments, the failover's DR environment) a
``ThreadingHTTPServer`` on 127.0.0.1 starts for it, and its CNAME (port 80) resolves there
(sandbox/resolver.py). A GET answers from the environment's state in the API, as its load balancer would:

- Ready with health Green or Yellow: 200, ``ok <environment>``;
- Ready with health Red (``adapters_beanstalk_store.force_health``): 500;
- launching, terminating, gone: 503.

:meth:`Web.answer_with` makes an environment answer a status of the test's choosing whatever its health says
(an application that fails while Beanstalk reports it Green). Every request is kept in :attr:`Server.log`
(host, path, status, modeled time) for tests. A plan target that is no Beanstalk environment (``dns.primary_target``
/ ``dr_target`` of an Auto Scaling plan) is served too, answering 200 while sandbox/endpoints.py finds it healthy
and 503 otherwise. The plan's DNS name resolves to the server of the target Route 53 answers with
(``adapters_route53.answer_for``: its routing policy and health checks, as TestDNSAnswer answers).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from sandbox import clock, resolver, responses


@dataclass
class Server:
    region: str
    environment: str  # the Beanstalk environment, or the host name of a plan target without one
    cname: str
    httpd: ThreadingHTTPServer
    log: list[dict[str, Any]] = field(default_factory=list)
    status: Callable[[], int] | None = None  # how a plan target answers (None: from the environment)


class Web:
    def __init__(self, dns: Any) -> None:
        self.dns = dns
        self.servers: dict[tuple[str, str], Server] = {}
        self.overrides: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def answer_with(self, region: str, environment: str, status: int | None) -> None:
        """Make ``environment`` answer ``status`` (None: as its health says). A name ending in ``*`` is a prefix: every
        environment whose name starts with it, including one not created yet (a drill's copy: ``<name>-drill-*``)."""
        with self._lock:
            if status is None:
                self.overrides.pop((region, environment), None)
            else:
                self.overrides[(region, environment)] = status

    def log_of(self, region: str, environment: str) -> list[dict[str, Any]]:
        server = self.servers.get((region, environment))
        return list(server.log) if server else []

    def _status(self, region: str, environment: str) -> int:
        with self._lock:
            forced = self.overrides.get((region, environment))
            if forced is None:
                forced = next((s for (r, name), s in self.overrides.items() if r == region and name.endswith("*")
                               and environment.startswith(name[:-1])), None)
            server = self.servers.get((region, environment))
        if forced is not None:
            return forced
        if server is not None and server.status is not None:
            return server.status()
        eb = boto3.client("elasticbeanstalk", region_name=region)
        found = eb.describe_environments(EnvironmentNames=[environment], IncludeDeleted=False)["Environments"]
        if not found or found[0].get("Status") != "Ready":
            return 503
        return 500 if found[0].get("Health") == "Red" else 200

    def serve_target(self, region: str, host: str, healthy: Callable[[], tuple[bool, str]]) -> Server:
        """Serve a plan target that is no Beanstalk environment (an Auto Scaling group's load balancer name):
        200 while ``healthy`` (sandbox/endpoints.py) says so, 503 otherwise."""
        server = self.serve(region, host, host)
        server.status = lambda: 200 if healthy()[0] else 503
        return server

    def serve(self, region: str, environment: str, cname: str) -> Server:
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                status = web._status(region, environment)
                body = (f"ok {environment}\n" if status < 400 else f"error {status} {environment}\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.log.append({"host": self.headers.get("Host", ""), "path": self.path, "status": status,
                                   "at": clock.now()})

            def log_message(self, *args: Any) -> None:
                return None

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        server = Server(region, environment, cname.lower(), httpd)
        with self._lock:
            old = self.servers.pop((region, environment), None)
            self.servers[(region, environment)] = server
        if old is not None:
            old.httpd.shutdown()
            old.httpd.server_close()
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        resolver.register(cname, 80, httpd.server_address[1])
        return server

    def close(self) -> None:
        with self._lock:
            servers, self.servers = list(self.servers.values()), {}
        for server in servers:
            resolver.unregister(server.cname, 80)
            server.httpd.shutdown()
            server.httpd.server_close()

    # -- the plan's DNS name ------------------------------------------------------------------------------------
    def resolve_record(self, name: str, port: int) -> int | None:
        """The server of the target Route 53 answers for ``name`` (routing policy and health checks included,
        as TestDNSAnswer answers from the sandbox's resolver location), or None."""
        from sandbox import adapters_route53

        for value in adapters_route53.answer_for(name, "CNAME"):
            target = resolver.lookup(value.rstrip(".").lower(), port)
            if target is not None:
                return target
        return None

    # -- hooks --------------------------------------------------------------------------------------------------
    def hooks(self) -> responses.Hooks:
        return [("after-call.elastic-beanstalk.CreateEnvironment", self._created)]

    def _created(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300 and parsed.get("CNAME"):
            self.serve(context["client_region"], parsed["EnvironmentName"], parsed["CNAME"])


def install(events: Any, dns: Any) -> Web:
    web = Web(dns)
    resolver.install()
    resolver.add_fallback(web.resolve_record)
    responses.hook(events, web.hooks(), "web")
    return web


def uninstall(events: Any, web: Web | None) -> None:
    if web is None:
        return
    responses.unhook(events, web.hooks(), "web")
    with contextlib.suppress(Exception):
        web.close()
    resolver.uninstall()
