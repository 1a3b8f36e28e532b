"""Market Steward (市场管家): the application factory."""
from __future__ import annotations

import logging

from flask import Flask, g, request
from flask_appbuilder import AppBuilder

from app.extensions import db, limiter, migrate


def create_app(config=None) -> Flask:
    """Build the app: config, extensions, back office views, API blueprints, CLI."""
    from config import get_config

    app = Flask(__name__, instance_relative_config=False)
    cfg = config if config is not None and not isinstance(config, str) else get_config(config)
    app.config.from_object(cfg)
    from app.security import ROLES

    app.config["FAB_ROLES"] = ROLES
    app.json.ensure_ascii = False
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    register_extensions(app)
    register_request_hooks(app)
    with app.app_context():
        register_views(app)
    register_blueprints(app)
    register_cli(app)
    logging.getLogger("wechatpy").setLevel(logging.WARNING)
    # urllib3 logs request URLs at DEBUG; WeChat's jscode2session URL carries the app secret.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
    return app


def register_extensions(app: Flask) -> None:
    """Bind SQLAlchemy, Alembic, the audit hooks and the job queue to the app."""
    from app import models  # noqa: F401  (every table on the metadata)
    from app.services import audit, scope
    from app import queues

    db.init_app(app)
    migrate.init_app(app, db, directory="migrations", render_as_batch=True, compare_type=True)
    audit.install()
    scope.install_write_guard()
    queues.init_app(app)
    limiter.init_app(app)


def register_request_hooks(app: Flask) -> None:
    """Give every request an id (for the audit log and logs)."""
    from app.services.audit import new_request_id
    from app.services.scope import ZoneScopeViolation

    @app.before_request
    def _request_id():
        g.request_id = request.headers.get("X-Request-ID") or new_request_id()

    @app.errorhandler(ZoneScopeViolation)
    def _zone_forbidden(exc):
        from app.extensions import db

        db.session.rollback()
        if request.path.startswith("/api/"):
            return {"message": str(exc)}, 403
        return str(exc), 403

    @app.after_request
    def _echo_request_id(response):
        response.headers.setdefault("X-Request-ID", getattr(g, "request_id", ""))
        return response


def register_views(app: Flask) -> None:
    """Create the AppBuilder and add every back office view and menu."""
    from app.views import register_views as add_views

    appbuilder = AppBuilder()
    appbuilder.init_app(app, db.session)
    add_views(appbuilder)
    appbuilder.post_init()


def register_blueprints(app: Flask) -> None:
    """Register the JSON API blueprints and public pages."""
    from app.api import register_api

    register_api(app)


def register_cli(app: Flask) -> None:
    """Add the `flask market ...` commands."""
    from app.cli import market_cli

    app.cli.add_command(market_cli)
