"""JSON API blueprints."""


def register_api(app):
    """Register the API blueprints on the app."""
    return None
