"""Every periodic job, declared in one place.

Run by the scheduler process: `TZ=Asia/Shanghai rq cron jobs.schedule --url $REDIS_URL`.
Each entry: (dotted function path, queue, cron expression in Asia/Shanghai, description).
"""
from __future__ import annotations

from rq import cron
from rq.utils import import_attribute

SCHEDULE: list[tuple[str, str, str, str]] = [
]

for _path, _queue, _expression, _description in SCHEDULE:
    cron.register(import_attribute(_path), _queue, cron=_expression, name=_path)
