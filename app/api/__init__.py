"""JSON API blueprints."""


def register_api(app):
    """Register the API blueprints on the app."""
    from app.api.mp import register as register_mp_api

    register_mp_api(app)

    from app.views.payments import receipt_verification

    app.register_blueprint(receipt_verification)
