"""Flask extensions, created once and bound to each app in `create_app` (microblog's pattern)."""

from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from .db import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
