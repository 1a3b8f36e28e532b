// 账单、日期等的显示文字。
const { formatFen } = require('./money')

const BILL_STATUS = { issued: '未缴', partially_paid: '部分已缴', paid: '已缴' }
const BILL_KIND = { regular: '月度账单', adjustment: '调整账单', adhoc: '临时账单' }
const PAY_METHOD = { wechat: '微信支付', cash: '现金', bank_transfer: '银行转账' }

function pad(n) {
  return n < 10 ? '0' + n : String(n)
}

// ISO 8601（UTC）-> 北京时间 "2026-11-05 14:03"
function formatDateTime(iso) {
  if (!iso) return ''
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return ''
  const d = new Date(t + 8 * 3600 * 1000)
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`
}

// "2026-10" -> "2026年10月"
function formatPeriod(period) {
  const m = /^(\d{4})-(\d{2})$/.exec(period || '')
  return m ? `${m[1]}年${Number(m[2])}月` : period || ''
}

// 列表与详情共用的账单显示字段
function billView(bill) {
  const isPaid = bill.status === 'paid'
  return Object.assign({}, bill, {
    periodText: formatPeriod(bill.period),
    kindText: BILL_KIND[bill.kind] || '',
    statusText: bill.is_overdue ? '逾期' : BILL_STATUS[bill.status] || bill.status,
    amountText: formatFen(bill.amount_fen),
    lateFeeText: formatFen(bill.late_fee_fen),
    paidText: formatFen(bill.paid_fen),
    outstandingText: formatFen(bill.outstanding_fen),
    hasLateFee: bill.late_fee_fen > 0,
    unitsText: (bill.unit_codes || []).join('、'),
    isPaid,
    payable: !isPaid && bill.outstanding_fen > 0,
  })
}

module.exports = { BILL_STATUS, PAY_METHOD, formatDateTime, formatPeriod, billView }
