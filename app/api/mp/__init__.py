"""The merchant mini-program API (/api/mp/v1): conventions shared by every resource module.

- JSON in and out; money as integer fen; errors as {"error": {"code", "message"}} (Chinese message),
  for our own errors, domain exceptions, validation errors, Flask's 404/405, malformed JSON and 429.
- `Authorization: Bearer <token>`: @token_required sets g.api_token / g.mp_user;
  @merchant_required also picks the merchant (header X-Merchant-Id, default the first binding) and
  sets g.mp_binding / g.merchant.
- @api_doc(...) declares an operation for the OpenAPI document (/api/mp/v1/openapi.json), built with
  apispec + its marshmallow plugin from the schemas in app/api/schemas/; /api/mp/v1/docs shows it
  with the swagger-ui files bundled with Flask-AppBuilder.
- paginate(stmt) answers {items, page, page_size, total}; rate_limit("10/minute") limits per client IP.
- Bodies are limited to 64 KB; an upload view raises its own limit with @max_body(bytes) and documents
  its form with @api_doc(..., body_content_type="multipart/form-data").

Adding a resource module: create app/api/mp/<name>.py that imports `mp_api` from here, decorate each
view with @mp_api.route, @api_doc and @merchant_required (in that order, outermost first), and add the
module to RESOURCE_MODULES below.
"""
from __future__ import annotations

import functools
import importlib
import logging
import re
from typing import Any, Callable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from app.extensions import db, limiter
from app.services.exceptions import DomainError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/mp/v1"
mp_api = Blueprint("mp_api", __name__, url_prefix=API_PREFIX)

#: Modules that add routes to mp_api (imported by register()). The payments engineer appends theirs.
RESOURCE_MODULES = ["app.api.mp.auth", "app.api.mp.me", "app.api.mp.bills", "app.api.mp.payments",
                    "app.api.mp.tickets"]

#: Default (code, Chinese message) per HTTP status.
STATUS_ERRORS = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "没有权限执行此操作"),
    404: ("not_found", "请求的内容不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    409: ("conflict", "当前状态不允许此操作"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "请以 JSON 格式提交"),
    422: ("validation_failed", "提交的数据不正确"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
    500: ("internal_error", "服务器内部错误，请稍后再试"),
    502: ("upstream_error", "微信服务暂时不可用，请稍后再试"),
    503: ("unavailable", "服务暂时不可用，请稍后再试"),
}


class ApiError(Exception):
    """An error answered with the envelope: ApiError(404, "bill_not_found", "账单不存在")."""

    def __init__(self, status: int, code: str | None = None, message: str | None = None, **details: Any):
        default_code, default_message = STATUS_ERRORS.get(status, ("error", "请求失败"))
        super().__init__(message or default_message)
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.details = details


def error_response(status: int, code: str | None = None, message: str | None = None,
                   details: dict | None = None, headers: dict | None = None) -> Response:
    """The error envelope {"error": {"code", "message"[, "details"]}} with the status."""
    default_code, default_message = STATUS_ERRORS.get(status, ("error", "请求失败"))
    body: dict[str, Any] = {"code": code or default_code, "message": message or default_message}
    if details:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # pragma: no cover - the session may already be unusable
        logger.exception("rollback failed")


@mp_api.errorhandler(ApiError)
def _api_error(exc: ApiError):
    _rollback()
    return error_response(exc.status, exc.code, exc.message, exc.details or None)


@mp_api.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    _rollback()
    return error_response(exc.http_status, exc.code, exc.message)


@mp_api.errorhandler(ValidationError)
def _validation_error(exc: ValidationError):
    _rollback()
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return error_response(422, "validation_failed", "提交的数据不正确", {"fields": messages})


def _http_error(exc: HTTPException):
    code = exc.code or 500
    headers = {}
    if code == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    return error_response(code, headers=headers)


@mp_api.errorhandler(HTTPException)
def _blueprint_http_error(exc: HTTPException):
    _rollback()
    return _http_error(exc)


@mp_api.errorhandler(Exception)
def _unexpected_error(exc: Exception):
    if isinstance(exc, HTTPException):  # pragma: no cover - handled above
        return _http_error(exc)
    _rollback()
    logger.exception("Unexpected error in %s %s", request.method, request.path)
    return error_response(500)


def _routing_error(exc: HTTPException):
    """404/405 raised while routing (before any blueprint is known): envelope under /api/mp/ only."""
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        return _http_error(exc)
    return exc


# -- request helpers -----------------------------------------------------------------------------

#: Largest request body the API reads, in bytes.
MAX_BODY_BYTES = 64 * 1024


@mp_api.before_request
def _limit_body_size():
    limit = getattr(current_app.view_functions.get(request.endpoint), "_mp_max_body", None) or MAX_BODY_BYTES
    if callable(limit):
        limit = limit()
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", "请求内容过大")


def max_body(limit: int | Callable[[], int]) -> Callable:
    """Let a view read bodies larger than MAX_BODY_BYTES (an upload): bytes, or a callable returning them."""

    def decorate(view: Callable) -> Callable:
        view._mp_max_body = limit
        return view

    return decorate


def json_body(schema: Schema | None = None) -> dict[str, Any]:
    """The request's JSON object, loaded through `schema` (400 when missing or malformed, 422 when invalid)."""
    data = request.get_json(silent=True, force=True) if request.data else None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "请求体应为 JSON 对象")
    from app.api.schemas.common import has_nul

    if has_nul(data):
        raise ApiError(422, "validation_failed", "提交的内容不能包含控制字符")
    if schema is None:
        return data
    return schema.load(data)


def query_args(schema: Schema) -> dict[str, Any]:
    """The query string loaded through `schema` (422 when invalid); unknown parameters are ignored."""
    from marshmallow import EXCLUDE

    return schema.load(request.args, unknown=EXCLUDE)


def paginate(stmt: sa.Select, item_schema: Schema, page: int, page_size: int,
             prepare: Callable[[list[Any]], None] | None = None) -> dict[str, Any]:
    """Run a Select a page at a time: {items, page, page_size, total}; prepare(rows) runs before the dump."""
    total = db.session.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).scalars().all()
    if prepare is not None and rows:
        prepare(rows)
    return {"items": item_schema.dump(rows, many=True), "page": page, "page_size": page_size, "total": total}


def rate_limit(limit_value: str | Callable[[], str], key_func: Callable[[], str] | None = None, **kwargs: Any):
    """A Flask-Limiter limit ("10/minute", or a callable returning one) per client IP by default;
    exceeding it answers 429 with the error envelope."""
    return limiter.limit(limit_value, key_func=key_func, **kwargs)


# -- authentication ------------------------------------------------------------------------------


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "请先登录")
    return token


def _authenticate() -> None:
    from app.services import mp_auth

    token = mp_auth.authenticate_token(_bearer_token())
    g.api_token = token
    g.mp_user = token.wechat_user
    if mp_auth.touch_token(token):
        db.session.commit()


def token_required(view: Callable) -> Callable:
    """Require a valid API token; sets g.api_token and g.mp_user (no merchant binding needed)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        _authenticate()
        return view(*args, **kwargs)

    wrapper._mp_auth = "token"
    return wrapper


def merchant_required(view: Callable) -> Callable:
    """Require a valid API token bound to a merchant; sets g.mp_user, g.mp_binding and g.merchant.

    The merchant is the one named by the X-Merchant-Id header, or the user's first active binding."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        from app.services import mp_auth

        _authenticate()
        binding = mp_auth.current_binding(g.mp_user, request.headers.get("X-Merchant-Id"))
        g.mp_binding = binding
        g.merchant = binding.merchant
        return view(*args, **kwargs)

    wrapper._mp_auth = "merchant"
    return wrapper


# -- OpenAPI ---------------------------------------------------------------------------------------


def api_doc(summary: str, *, tags: list[str] | None = None, body: type[Schema] | Schema | None = None,
            query: type[Schema] | Schema | None = None, response: type[Schema] | Schema | None = None,
            status: int = 200, content_type: str | tuple[str, ...] = "application/json",
            errors: tuple[int, ...] = (), also: tuple[int, ...] = (), description: str | None = None,
            body_content_type: str = "application/json") -> Callable:
    """Declare a view's operation for the OpenAPI document (apply under @mp_api.route).

    `also`: other success statuses answered with the same body (POST /payments: 201 new, 200 reused).
    `content_type`: one media type of the success answer, or several (an image: JPEG or PNG).
    `body_content_type`: "multipart/form-data" for an upload (wx.uploadFile); the body schema then
    describes the form fields (a file field carries metadata {"type": "string", "format": "binary"})."""

    def decorate(view: Callable) -> Callable:
        view._mp_doc = dict(summary=summary, tags=tags or [], body=body, query=query, response=response,
                            status=status, content_type=content_type, errors=errors, also=also,
                            description=description, body_content_type=body_content_type)
        return view

    return decorate


#: A werkzeug rule variable: <name>, <int:name>, <int(signed=True):name>.
_RULE_ARG = re.compile(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def build_openapi(app) -> dict[str, Any]:
    """The OpenAPI 3 document of every documented view of mp_api."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    from app.api.schemas.common import ErrorSchema

    spec = APISpec(
        title="市场管家 商户小程序 API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Merchant mini-program API. Money is integer fen. See docs/api.md."},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.parameter("X-Merchant-Id", "header", {
        "name": "X-Merchant-Id", "required": False, "schema": {"type": "integer"},
        "description": "The merchant to act for (absent or blank: the first bound merchant). "
                       "400 invalid_merchant_header when not an integer, 403 merchant_not_bound when not bound."})
    paths: dict[str, dict[str, Any]] = {}
    rules = sorted((r for r in app.url_map.iter_rules() if r.endpoint.startswith("mp_api.")), key=lambda r: r.rule)
    # Schemas with an `openapi_extra` dict (e.g. a oneOf the fields alone cannot say) are registered first,
    # with those keys merged in; the operations then refer to the same component.
    for rule in rules:
        doc = getattr(app.view_functions[rule.endpoint], "_mp_doc", None) or {}
        for schema in (doc.get("body"), doc.get("query"), doc.get("response")):
            extra = getattr(schema, "openapi_extra", None)
            if schema is not None and extra:
                schema_cls = schema if isinstance(schema, type) else type(schema)
                name = schema_cls.__name__.removesuffix("Schema")
                if name not in spec.components.schemas:
                    spec.components.schema(name, component=dict(extra), schema=schema_cls)
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "_mp_doc", None)
        if doc is None:
            continue
        path = _RULE_ARG.sub(lambda m: "{%s}" % m.group(2), rule.rule)
        path_params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer"} if kind == "int" else {"type": "string"}}
            for kind, name in _RULE_ARG.findall(rule.rule)
        ]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "summary": doc["summary"],
                "tags": doc["tags"],
                "operationId": f"{rule.endpoint.split('.', 1)[1]}_{method.lower()}",
                "parameters": list(path_params),
                "responses": {},
            }
            if doc["description"]:
                operation["description"] = doc["description"]
            if doc["query"] is not None:
                operation["parameters"].append({"in": "query", "schema": doc["query"]})
            auth = getattr(view, "_mp_auth", None)
            statuses = set(doc["errors"]) | {500}
            if auth:
                operation["security"] = [{"bearerAuth": []}]
                statuses |= {401}
            if auth == "merchant":
                operation["parameters"].append("X-Merchant-Id")
                statuses |= {400, 403}  # 400 invalid_merchant_header, 403 not_bound / merchant_not_bound
            if doc["body"] is not None:
                operation["requestBody"] = {"required": True,
                                            "content": {doc["body_content_type"]: {"schema": doc["body"]}}}
                statuses |= {400, 422}
                if doc["body_content_type"] != "application/json":
                    statuses |= {413, 415}
            if doc["query"] is not None:
                statuses |= {422}
            media_types = doc["content_type"] if isinstance(doc["content_type"], tuple) else (doc["content_type"],)
            if doc["response"] is not None:
                ok = {"description": "OK", "content": {media: {"schema": doc["response"]} for media in media_types}}
            elif media_types != ("application/json",):
                ok = {"description": "OK", "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                                       for media in media_types}}
            else:
                ok = {"description": "No content"}
            for ok_status in (doc["status"], *doc["also"]):
                operation["responses"][str(ok_status)] = ok
            for code in sorted(statuses):
                operation["responses"][str(code)] = {
                    "description": STATUS_ERRORS.get(code, ("error", "错误"))[1],
                    "content": {"application/json": {"schema": "Error"}},
                }
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@mp_api.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3 document of this API."""
    app = current_app._get_current_object()
    document = app.extensions.get("mp_api_openapi")
    if document is None:
        document = app.extensions["mp_api_openapi"] = build_openapi(app)
    return jsonify(document)


_DOCS_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>商户小程序 API 文档</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui"></div>
<script src="{js}"></script>
<script>window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}});</script>
</body></html>"""


@mp_api.get("/docs")
def docs_page():
    """Swagger UI over the OpenAPI document, from Flask-AppBuilder's bundled static files."""
    from flask import url_for

    html = _DOCS_PAGE.format(
        css=url_for("appbuilder.static", filename="css/swagger/swagger-ui.css"),
        js=url_for("appbuilder.static", filename="js/swagger-ui-bundle.js"),
        spec=url_for("mp_api.openapi_document"),
    )
    return Response(html, mimetype="text/html")


def register(app) -> None:
    """Import the resource modules, register the blueprint, its routing-error envelope and CSRF exemption."""
    for name in RESOURCE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    app.register_blueprint(mp_api)
    app.register_error_handler(404, _routing_error)
    app.register_error_handler(405, _routing_error)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(mp_api)
