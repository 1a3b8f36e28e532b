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
@click.option("--months", default=3, show_default=True, type=click.IntRange(0, 36),
              help="Months of history before the current one: readings, posted bills, payments, late fees (0: none).")
def seed_demo(stalls, months):
    """Build the demo market 金江中心市场 once, with recent history (re-running changes nothing)."""
    from app.services.demo import DEMO_MERCHANT_PHONE, seed_demo as run_seed
    from app.utils.money import format_yuan

    try:
        result = run_seed(stalls=stalls, history_months=months)
    except DomainError as exc:
        _fail(exc)
    db.session.commit()
    history = result["history"]
    if not result["created"]:
        click.echo("演示市场已存在，未重复生成。 (demo market already exists)")
    else:
        click.echo(
            f"演示市场已生成：{result['units']} 个摊位、{result['merchants']} 户商户、"
            f"{result['leases']} 份租约、{result['meters']} 块表。"
        )
    if result.get("tickets"):
        click.echo(f"演示工单：{result['tickets']} 张（报修、投诉、建议，各种处理状态）。")
    if history.periods:
        click.echo(
            f"演示历史：账期 {'、'.join(history.periods)}，{history.readings} 条抄表读数，{history.bills} 张账单，"
            f"{history.payments} 笔线下收款，滞纳金 {format_yuan(history.late_fee_fen)}。"
        )
        click.echo(f"演示商户 (walk-through merchant): 手机 {DEMO_MERCHANT_PHONE}，见 docs/wechat-pay.md")
    elif months:
        click.echo("演示历史已是最新，未重复生成。 (history up to date)")
    if not result["created"]:
        return
    click.echo("演示账号 (demo accounts): " + ", ".join(result["users"]))
    if result["password_from_env"]:
        click.echo("密码 (password): 取自环境变量 DEMO_PASSWORD")
    else:
        click.echo(f"密码 (password, shown once): {result['password']}")


# --- imports: meter readings and onboarding master data (exit 0 all rows in, 3 some rejected,
# --- 2 the file could not be read, 1 other errors such as an unknown market) --------------------

IMPORT_ROWS_SHOWN = 20


def _import_progress(done, total, result):
    if sys.stderr.isatty():
        click.echo(f"\r已处理 {done} 行……", nl=False, err=True)


def _report_import(result, file, errors_path, write_errors, default_suffix):
    """Print an import's counts and rejected rows; write the error file; exit 3 if rows were rejected."""
    import os

    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(
        f"已处理 {result.processed} 行：新增 {result.inserted}，更新 {result.updated}，未变 {result.unchanged}，"
        f"拒绝 {result.rejected}，待复核 {result.flagged}"
    )
    click.echo(" ".join(f"{key}={value}" for key, value in result.counts().items()))
    if not result.rejected:
        return
    from app.services.master_import import SHEETS

    for error in result.errors[:IMPORT_ROWS_SHOWN]:
        where = f"{SHEETS[error.sheet].title} " if error.sheet in SHEETS else ""
        click.echo(f"  {where}第 {error.line_no} 行：{error.reason}")
    if result.rejected > IMPORT_ROWS_SHOWN:
        click.echo(f"  …… 共 {result.rejected} 行被拒绝")
    path = errors_path or os.path.splitext(file)[0] + default_suffix
    try:
        write_errors(path)
        click.echo(f"被拒绝的行（含错误原因）已写入：{path}，改正后可再次导入")
    except OSError as exc:
        click.echo(f"无法写入错误文件 {path}：{exc.strerror or exc}", err=True)
    sys.exit(3)


@market_cli.command("import-readings")
@click.argument("file")
@click.option("--market", "market_code", required=True, help="Market code, e.g. JJ.")
@click.option("--errors", "errors_path", default=None,
              help="Write rejected rows here (.csv or .xlsx); default FILE.errors.csv beside the file.")
def import_readings(file, market_code, errors_path):
    """Import meter readings (CSV/XLSX). Exit 0 all accepted, 3 some rejected, 2 file unreadable."""
    import os

    from app.models.readings import ImportKind
    from app.services import audit
    from app.services.readings import (
        ReadingFileUnreadable, create_import_batch, get_market, import_meter_readings, write_batch_error_file,
    )

    audit.set_actor(None, "cli")
    try:
        market = get_market(market_code)
    except DomainError as exc:
        _fail(exc)
    if not os.path.isfile(file):
        click.echo(f"无法读取文件：{file} 不存在", err=True)
        sys.exit(2)
    batch = create_import_batch(market.id, ImportKind.readings, file, source="cli")
    try:
        result = import_meter_readings(batch, file, progress=_import_progress)
    except ReadingFileUnreadable as exc:
        db.session.rollback()
        click.echo(f"无法读取文件：{exc.message}", err=True)
        sys.exit(2)
    except Exception as exc:  # never a traceback for the clerk
        db.session.rollback()
        click.echo(f"导入失败：{exc}", err=True)
        sys.exit(1)
    db.session.commit()

    def write_errors(path):
        fmt = "xlsx" if path.lower().endswith(".xlsx") else "csv"
        write_batch_error_file(batch, path, fmt)

    _report_import(result, file, errors_path, write_errors, ".errors.csv")


@market_cli.command("import-master")
@click.argument("files", nargs=-1, required=True)
@click.option("--market", "market_code", required=True, help="Market code, e.g. JJ.")
@click.option("--errors", "errors_path", default=None,
              help="Write rejected rows here (.xlsx, a sheet each); default FILE.errors.xlsx beside the first file.")
def import_master(files, market_code, errors_path):
    """Onboarding import: units, merchants, leases, meters from one .xlsx workbook or CSV files."""
    from app.models.readings import ImportKind
    from app.services import audit
    from app.services.master_import import (
        MasterFileUnreadable, expand_sources, import_master_data, write_master_error_file,
    )
    from app.services.readings import create_import_batch, get_market

    audit.set_actor(None, "cli")
    try:
        market = get_market(market_code)
    except DomainError as exc:
        _fail(exc)
    try:
        sources = expand_sources(files)
    except MasterFileUnreadable as exc:
        click.echo(f"无法读取文件：{exc.message}", err=True)
        sys.exit(2)
    batch = create_import_batch(market.id, ImportKind.master, files[0], source="cli")
    try:
        result = import_master_data(batch, sources, progress=_import_progress)
    except MasterFileUnreadable as exc:
        db.session.rollback()
        click.echo(f"无法读取文件：{exc.message}", err=True)
        sys.exit(2)
    except Exception as exc:  # never a traceback for the clerk
        db.session.rollback()
        click.echo(f"导入失败：{exc}", err=True)
        sys.exit(1)
    db.session.commit()
    for sheet, counts in (result.sheets or {}).items():
        click.echo(f"  {sheet}: " + " ".join(f"{key}={value}" for key, value in counts.items()))
    _report_import(result, files[0], errors_path, lambda path: write_master_error_file(batch, path),
                   ".errors.xlsx")


# --- billing run (出账): --preview prints totals and a sample; otherwise posts, all bills or none ----


@market_cli.command("bill")
@click.option("--market", "market_code", required=True, help="Market code, e.g. JJ.")
@click.option("--period", required=True, help="Billing period YYYY-MM.")
@click.option("--preview", is_flag=True, help="Compute and print totals and a sample; post nothing.")
@click.option("--issue-date", default=None, help="Issue date YYYY-MM-DD (default: today, Asia/Shanghai).")
@click.option("--sample", default=3, show_default=True, help="Bills shown by --preview.")
def bill(market_code, period, preview, issue_date, sample):
    """Billing run of a market for a period (one bill per lease); re-running bills only new leases."""
    from datetime import date as _date

    from app.services import audit, billing
    from app.utils.dates import parse_period
    from app.utils.money import format_yuan

    audit.set_actor(None, "cli")
    try:
        period_day = parse_period(period)
        issue = _date.fromisoformat(issue_date) if issue_date else None
    except ValueError as exc:
        click.echo(f"错误：{exc}", err=True)
        sys.exit(2)
    try:
        market = billing.get_market_by_code(market_code)
        if preview:
            result = billing.preview_billing(market.id, period_day)
            summary = result.summary
            click.echo(f"预览 {market.code} {period}（未过账）：{summary.bills} 张账单，{summary.lines} 条明细，"
                       f"合计 {format_yuan(summary.total_fen)}")
            for zone in summary.zones:
                click.echo(f"  {zone.zone_name}：{zone.bills} 张，{format_yuan(zone.total_fen)}")
            for staged in billing.staged_bills(result.batch, page_size=sample):
                click.echo(f"  [{staged.lease_code}] {staged.merchant_name} {staged.zone_name} "
                           f"{format_yuan(staged.total_fen)}")
                for line in staged.lines:
                    click.echo(f"      {line.description}  {format_yuan(line.amount_fen)}")
            _echo_missing(result.missing)
            db.session.rollback()
            return
        run = billing.request_billing_run(market.id, period_day, issue_date=issue)
        db.session.commit()
        run_id = run.id
        try:
            outcome = billing.post_billing_run(run_id)
        except DomainError as exc:
            db.session.rollback()
            billing.mark_run_failed(run_id, exc.message)
            db.session.commit()
            raise
    except DomainError as exc:
        db.session.rollback()
        _fail(exc)
    db.session.commit()
    click.echo(outcome.message)
    click.echo(f"本期账单共 {outcome.bill_count} 张，合计 {format_yuan(outcome.total_fen)}；"
               f"本次新增 {outcome.new_bills} 张，{outcome.new_lines} 条明细，{format_yuan(outcome.new_total_fen)}")
    _echo_missing(outcome.missing)


def _echo_missing(missing, shown=20):
    if not missing:
        return
    click.echo(f"缺少本期抄表读数的表 {len(missing)} 块（未计入计量费用）：")
    for meter in missing[:shown]:
        click.echo(f"  {meter.number} {meter.zone_name} {meter.unit_code or '公摊'}")
    if len(missing) > shown:
        click.echo(f"  …… 共 {len(missing)} 块")


@market_cli.command("accrue-late-fees")
@click.option("--market", "market_code", required=True, help="Market code, e.g. JJ.")
@click.option("--date", "day_text", default=None, help="Accrue through this day YYYY-MM-DD (default: today, Asia/Shanghai).")
@click.option("--preview", is_flag=True, help="Compute and print what would be accrued; save nothing.")
@click.option("--sample", default=10, show_default=True, help="Bills shown by --preview.")
def accrue_late_fees_command(market_code, day_text, preview, sample):
    """Accrue late fees (滞纳金) through a day: every day after the last accrued one (re-running adds nothing)."""
    from datetime import date as _date

    import sqlalchemy as sa

    from app.models import Market
    from app.services import audit, latefees
    from app.utils.dates import today_local
    from app.utils.money import format_yuan

    audit.set_actor(None, "cli")
    try:
        day = _date.fromisoformat(day_text) if day_text else today_local()
    except ValueError:
        click.echo(f"错误：日期格式应为 YYYY-MM-DD：{day_text}", err=True)
        sys.exit(2)
    market = db.session.scalar(sa.select(Market).where(Market.code == market_code))
    if market is None:
        click.echo(f"错误：市场 {market_code} 不存在", err=True)
        sys.exit(1)
    try:
        if preview:
            result = latefees.preview_late_fees(market.id, day, limit=sample)
            db.session.rollback()
            accrual = result.result
            if accrual.already_accrued:
                click.echo(f"{market.code} 的滞纳金已计提至 {accrual.last_day_before}，再次计提不会增加任何金额。")
                return
            if not accrual.days:
                click.echo(f"{market.code} 未设置滞纳金规则，不计提。")
                return
            click.echo(f"预览 {market.code} 滞纳金（未保存）：{accrual.days[0].day} 至 {accrual.days[-1].day}，"
                       f"{result.bill_count} 张账单，合计 {format_yuan(result.amount_fen)}")
            for line in result.lines:
                click.echo(f"  {line.bill_number} {line.merchant_name} 到期 {line.due_date} "
                           f"未付本金 {format_yuan(line.principal_fen)}  +{format_yuan(line.amount_fen)} "
                           f"→ {format_yuan(line.late_fee_fen)}")
            return
        result = latefees.accrue_late_fees(market.id, day)
    except DomainError as exc:
        db.session.rollback()
        _fail(exc)
    db.session.commit()
    if result.already_accrued:
        click.echo(f"{market.code} 的滞纳金已计提至 {result.last_day_before}，未重复计提。")
    elif not result.days:
        click.echo(f"{market.code} 未设置滞纳金规则，不计提。")
    else:
        charged = sum(d.bill_count for d in result.days)
        click.echo(f"已计提 {market.code} 滞纳金 {result.days[0].day} 至 {result.days[-1].day}："
                   f"{result.row_count} 条记录，{charged} 笔账单次计费，合计 {format_yuan(result.amount_fen)}")


# --- WeChat Pay: the periodic jobs, run by hand (docs/wechat-pay.md) ---------------------------------


@market_cli.command("reconcile-payments")
def reconcile_payments():
    """Query WeChat Pay for orders without a notification; apply paid ones, close expired ones."""
    from jobs.payments import reconcile_pay_orders_job

    try:
        counts = reconcile_pay_orders_job()
    except DomainError as exc:
        _fail(exc)
    click.echo("对账完成：" + (" ".join(f"{key}={value}" for key, value in counts.items()) or "没有待查询的订单"))


@market_cli.command("check-trade-bill")
@click.option("--date", "bill_date", default=None, help="Bill date YYYY-MM-DD (default: yesterday, Asia/Shanghai).")
def check_trade_bill(bill_date):
    """Download WeChat Pay's trade bill of a day and list the differences for Finance."""
    from jobs.payments import check_trade_bill_job

    try:
        counts = check_trade_bill_job(bill_date)
    except DomainError as exc:
        _fail(exc)
    except ValueError as exc:
        click.echo(f"错误：{exc}", err=True)
        sys.exit(2)
    click.echo(f"交易账单：微信 {counts['wechat_payments']} 笔，本系统 {counts['local_payments']} 笔，"
               f"差异 {counts['mismatches']} 条（新增 {counts['new_mismatches']} 条）")
