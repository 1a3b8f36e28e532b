// 账单、工单、日期等的显示文字。
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

const TICKET_KIND = { repair: '报修', complaint: '投诉', suggestion: '建议' }
const TICKET_STATUS = { submitted: '待受理', in_progress: '处理中', resolved: '待确认', closed: '已关闭', cancelled: '已取消' }
const TICKET_ACTION = {
  submitted: '提交工单',
  accepted: '已受理',
  assigned: '已指派处理人',
  progress: '处理进展',
  resolved: '已处理，请确认',
  reopened: '未解决，重新处理',
  closed: '已关闭',
  cancelled: '已取消',
  rated: '已评价',
}
const TICKET_SUMMARY_CHARS = 30

// 工单列表项标题：有标题用标题，否则取描述的开头，再否则用类别
function ticketHeadline(ticket) {
  const title = (ticket.title || '').trim()
  if (title) return title
  const text = (ticket.description || '').replace(/\s+/g, ' ').trim()
  if (text) return text.length > TICKET_SUMMARY_CHARS ? text.slice(0, TICKET_SUMMARY_CHARS) + '…' : text
  return (TICKET_KIND[ticket.kind] || '工单') + '工单'
}

// 列表与详情共用的工单显示字段
function ticketView(ticket) {
  return Object.assign({}, ticket, {
    kindText: TICKET_KIND[ticket.kind] || ticket.kind,
    statusText: TICKET_STATUS[ticket.status] || ticket.status,
    headline: ticketHeadline(ticket),
    isUrgent: ticket.urgency === 'urgent',
    createdText: formatDateTime(ticket.created_at),
    dueText: formatDateTime(ticket.due_at),
    isOpen: ticket.status === 'submitted' || ticket.status === 'in_progress',
  })
}

module.exports = {
  BILL_STATUS,
  PAY_METHOD,
  TICKET_KIND,
  TICKET_STATUS,
  TICKET_ACTION,
  formatDateTime,
  formatPeriod,
  billView,
  ticketView,
}
