"""The manager's daily task list."""
from flask_appbuilder import BaseView, expose, has_access


class TaskListView(BaseView):
    route_base = "/tasks"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        return self.render_template("tasks/index.html")
