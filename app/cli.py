"""`flask --app run.py market ...` commands: thin wrappers over services, one commit each."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.extensions import db
from app.services.exceptions import DomainError

market_cli = AppGroup("market", help="市场管家 management commands.")


def _fail(exc: DomainError, status=1):
    click.echo(f"错误：{exc.message}", err=True)
    sys.exit(status)


@market_cli.command("sync-roles")
def sync_roles():
    """Create the role rows declared in code (Admin, Leader, Manager, Clerk, Finance, Repairer)."""
    from app.services.staff import ensure_roles

    ensure_roles()
    db.session.commit()
    click.echo("roles ok")


@market_cli.command("create-user")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True)
@click.option("--name", default="")
@click.password_option()
def create_user(username, roles, name, password):
    """Create a staff account with the given roles."""
    from app.services.staff import create_staff_user

    try:
        create_staff_user(username, password, list(roles), first_name=name or username)
    except DomainError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"user {username} created")


@market_cli.command("seed-demo")
@click.option("--stalls", default=300, show_default=True, help="Number of stalls in the demo market.")
def seed_demo(stalls):
    """Build the demo market 金江中心市场 once (re-running changes nothing)."""
    from app.services.demo import seed_demo as run_seed

    try:
        result = run_seed(stalls=stalls)
    except DomainError as exc:
        _fail(exc)
    db.session.commit()
    if not result["created"]:
        click.echo("演示市场已存在，未重复生成。 (demo market already exists)")
        return
    click.echo(
        f"演示市场已生成：{result['units']} 个摊位、{result['merchants']} 户商户、"
        f"{result['leases']} 份租约、{result['meters']} 块表。"
    )
    click.echo("演示账号 (demo accounts): " + ", ".join(result["users"]))
    if result["password_from_env"]:
        click.echo("密码 (password): 取自环境变量 DEMO_PASSWORD")
    else:
        click.echo(f"密码 (password, shown once): {result['password']}")
