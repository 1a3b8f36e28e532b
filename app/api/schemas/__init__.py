"""marshmallow schemas of the mini-program API (they also generate its OpenAPI document)."""
