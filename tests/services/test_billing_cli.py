"""`flask market bill`: --preview prints totals and a sample and posts nothing; without it, posts."""
import sqlalchemy as sa

from app.extensions import db
from app.models import Bill
from tests.factories import add_reading
from tests.services.test_billing import NOV


def bills():
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Bill))


def test_cli_preview_prints_totals_and_a_sample(app, market):
    add_reading(market.meters[0], NOV, 250)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["market", "bill", "--market", "JJ", "--period", "2026-11", "--preview",
                                                "--sample", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "预览 JJ 2026-11（未过账）：4 张账单，9 条明细，合计 ¥3,265.00" in out
    assert "A区·蔬菜：2 张，¥1,725.00" in out
    assert "电费 EA001 上次 1000 本次 1250" in out and "¥185.00" in out
    assert market.leases[1].code not in out  # a sample of one bill
    assert "缺少本期抄表读数的表 3 块" in out and "EA002" in out
    assert bills() == 0


def test_cli_posts_once(app, market):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["market", "bill", "--market", "JJ", "--period", "2026-11",
                                 "--issue-date", "2026-12-01"])
    assert result.exit_code == 0, result.output
    assert "2026-11 出账完成：4 张账单，合计 ¥3,080.00。" in result.output
    assert bills() == 4
    again = runner.invoke(args=["market", "bill", "--market", "JJ", "--period", "2026-11"])
    assert again.exit_code == 0
    assert "已过账（共 4 张账单），本次没有新的租约需要出账，未重复生成账单。" in again.output
    assert bills() == 4


def test_cli_errors(app, market):
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["market", "bill", "--market", "JJ", "--period", "2026-13"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    unknown = runner.invoke(args=["market", "bill", "--market", "XX", "--period", "2026-11"])
    assert unknown.exit_code == 1 and "市场 XX 不存在" in unknown.output
