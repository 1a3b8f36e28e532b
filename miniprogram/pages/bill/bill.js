// 账单详情：明细、滞纳金、缴费记录；缴费；已缴账单下载电子收据；对账单有疑问时提交投诉。
const api = require('../../utils/api')
const { formatFen } = require('../../utils/money')
const { billView, formatDateTime, PAY_METHOD } = require('../../utils/format')
const { payBills } = require('../../utils/pay')

function lineView(line) {
  const quantity = line.quantity ? line.quantity.replace(/\.?0+$/, '') : ''
  return Object.assign({}, line, {
    quantityText: quantity ? `${quantity}${line.unit_label || ''}` : '',
    amountText: formatFen(line.amount_fen),
    serviceText: line.service_start && line.service_end ? `${line.service_start} 至 ${line.service_end}` : '',
  })
}

function paymentView(payment) {
  return Object.assign({}, payment, {
    methodText: PAY_METHOD[payment.method] || payment.method,
    amountText: formatFen(payment.amount_fen),
    paidText: formatDateTime(payment.paid_dt),
  })
}

Page({
  data: {
    id: null,
    bill: null,
    loading: true,
    paying: false,
    downloading: false,
  },

  onLoad(options) {
    this.setData({ id: Number((options || {}).id) })
    return this.load()
  },

  onPullDownRefresh() {
    return this.load().then(() => wx.stopPullDownRefresh())
  },

  async load() {
    this.setData({ loading: true })
    try {
      const bill = await api.get('/bills/' + this.data.id)
      const view = billView(bill)
      view.lines = (bill.lines || []).map(lineView)
      view.payments = (bill.payments || []).map(paymentView)
      view.unitText = (bill.unit_codes || []).join('、')
      view.paidDtText = formatDateTime(bill.paid_dt)
      this.setData({ bill: view })
    } catch (err) {
      // 错误已提示
    } finally {
      this.setData({ loading: false })
    }
  },

  async onPay() {
    const bill = this.data.bill
    if (!bill || !bill.payable || this.data.paying) return
    this.setData({ paying: true })
    try {
      const outcome = await payBills([bill.id])
      if (outcome !== 'cancelled' && outcome !== 'failed') await this.load()
    } finally {
      this.setData({ paying: false })
    }
  },

  // 对账单有疑问：新建投诉，描述里写明账单编号
  onQuestion() {
    const bill = this.data.bill
    if (!bill) return
    wx.navigateTo({ url: `/pages/ticket-new/ticket-new?kind=complaint&bill=${encodeURIComponent(bill.number)}` })
  },

  async onDownloadReceipt() {
    const bill = this.data.bill
    if (!bill || !bill.has_receipt || this.data.downloading) return
    this.setData({ downloading: true })
    wx.showLoading({ title: '正在下载收据' })
    try {
      const filePath = await api.download(`/bills/${bill.id}/receipt`, `receipt-${bill.id}.pdf`)
      wx.hideLoading()
      await new Promise((resolve) => {
        wx.openDocument({
          filePath,
          fileType: 'pdf',
          showMenu: true,
          success: () => resolve(),
          fail: () => {
            wx.showToast({ title: '无法打开收据', icon: 'none' })
            resolve()
          },
        })
      })
    } catch (err) {
      wx.hideLoading()
    } finally {
      this.setData({ downloading: false })
    }
  },
})
