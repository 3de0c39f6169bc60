"""The scheduler's HTTP API, shaped like dcos-commons':

    GET  /v1/plans                      plan names
    GET  /v1/plans/NAME                 a plan: phases and steps, each with a status
    POST /v1/plans/NAME/interrupt       stop starting steps (kept across scheduler restarts)
    POST /v1/plans/NAME/continue
    GET  /v1/pod                        node names
    GET  /v1/pod/status                 every node's task, agent, address and ring state
    GET  /v1/pod/NODE/info              one node
    POST /v1/pod/NODE/restart           relaunch in place (same reservation and volume)
    POST /v1/pod/NODE/replace           relaunch elsewhere, taking the old node's place
    GET  /v1/endpoints                  the nodes' client addresses
    GET  /v1/config                     the target configuration
    PUT  /v1/config                     {"setting": value, ...}: a rolling update
    POST /v1/scale                      {"nodes": N}
    POST /v1/uninstall

Bad input (an unknown node or plan, an unparsable or disallowed change) is answered with
400 or 404 and a message naming it, and changes nothing.
"""
from __future__ import annotations

from http import HTTPStatus

from corral.framework.apiserver import ApiError, ApiServer, Reply, Request

from corral.examples.cassandra.config import ConfigError
from corral.examples.cassandra.service import CassandraService, node_index


def build_api(service: CassandraService, host: str, port: int) -> ApiServer:
    api = ApiServer(host, port)

    def node_name(request: Request) -> str:
        name = request.params["name"]
        if name not in service.records:
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown pod {name!r}: the pods are "
                                                 f"{', '.join(sorted(service.records, key=node_index))}")
        return name

    def plan_of(request: Request) -> str:
        name = request.params["name"]
        if name not in service.plans():
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown plan {name!r}: the plans are "
                                                 f"{', '.join(sorted(service.plans()))}")
        return name

    @api.route("GET", "/v1/plans")
    def plan_names(request: Request) -> Reply:
        with service.lock:
            return Reply.json(sorted(service.plans()))

    @api.route("GET", "/v1/plans/{name}")
    def plan(request: Request) -> Reply:
        with service.lock:
            return Reply.json(service.plans()[plan_of(request)].to_dict())

    @api.route("POST", "/v1/plans/{name}/interrupt")
    def interrupt(request: Request) -> Reply:
        service.interrupt(plan_of(request), True)
        return Reply.json({"message": f"plan {request.params['name']} interrupted"})

    @api.route("POST", "/v1/plans/{name}/continue")
    def resume(request: Request) -> Reply:
        service.interrupt(plan_of(request), False)
        service.evaluate()
        return Reply.json({"message": f"plan {request.params['name']} continued"})

    @api.route("GET", "/v1/pod")
    def pods(request: Request) -> Reply:
        with service.lock:
            return Reply.json(sorted(service.records, key=node_index))

    @api.route("GET", "/v1/pod/status")
    def pod_status(request: Request) -> Reply:
        with service.lock:
            return Reply.json([service.info(name) for name in sorted(service.records, key=node_index)])

    @api.route("GET", "/v1/pod/{name}/info")
    def pod_info(request: Request) -> Reply:
        return Reply.json(service.info(node_name(request)))

    @api.route("POST", "/v1/pod/{name}/restart")
    def pod_restart(request: Request) -> Reply:
        record = service.restart(node_name(request))
        service.evaluate()
        return Reply.json({"pod": record.name, "tasks": [record.task_id]})

    @api.route("POST", "/v1/pod/{name}/replace")
    def pod_replace(request: Request) -> Reply:
        name = node_name(request)
        old = service.records[name].task_id
        service.replace(name)
        service.evaluate()
        return Reply.json({"pod": name, "tasks": [old]})

    @api.route("GET", "/v1/endpoints")
    def endpoints(request: Request) -> Reply:
        return Reply.json(service.endpoints())

    @api.route("GET", "/v1/config")
    def config(request: Request) -> Reply:
        with service.lock:
            return Reply.json(dict(service.config.to_dict(), config_id=service.config.config_id))

    @api.route("PUT", "/v1/config")
    def update_config(request: Request) -> Reply:
        try:
            updated = service.update_config(request.json())
        except ConfigError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        service.evaluate()
        return Reply.json({"message": "configuration updated; rolling out one node at a time",
                              "config_id": updated.config_id})

    @api.route("POST", "/v1/scale")
    def scale(request: Request) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or "nodes" not in body:
            raise ApiError(HTTPStatus.BAD_REQUEST, f'expected {{"nodes": N}}, not {body!r}')
        try:
            message = service.scale(body["nodes"])
        except ConfigError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        service.evaluate()
        return Reply.json({"message": message})

    @api.route("POST", "/v1/uninstall")
    def uninstall(request: Request) -> Reply:
        service.uninstall()
        return Reply.json({"message": "uninstalling: killing the nodes, releasing reservations and volumes"})

    return api
