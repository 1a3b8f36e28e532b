"""Extension instances, bound to the app in create_app()."""
from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate

db = SQLA(model_class=Model)
migrate = Migrate()
#: Rate limits (storage RATELIMIT_STORAGE_URI; off when RATELIMIT_ENABLED is False, as in tests).
limiter = Limiter(key_func=get_remote_address)
