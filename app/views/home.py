"""The landing page after login."""
from flask import redirect, url_for
from flask_appbuilder import IndexView, expose
from flask_login import current_user


class HomeView(IndexView):
    """Send signed-in staff to their daily tasks; others to the login page."""

    @expose("/")
    def index(self):
        if current_user.is_authenticated:
            return redirect(url_for("TaskListView.index"))
        return redirect(url_for("AuthDBView.login"))
