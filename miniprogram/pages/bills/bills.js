// 账单：未缴 / 逾期 / 已缴，分页加载，勾选未缴账单一键缴费。
const api = require('../../utils/api')
const session = require('../../utils/session')
const { formatFen, sumFen } = require('../../utils/money')
const { billView } = require('../../utils/format')
const { payBills } = require('../../utils/pay')
const { loadStatusPage } = require('../../utils/paged')

const TABS = [
  { key: 'unpaid', label: '未缴' },
  { key: 'overdue', label: '逾期' },
  { key: 'paid', label: '已缴' },
]

Page({
  data: {
    tabs: TABS,
    status: 'unpaid',
    items: [],
    page: 0,
    total: 0,
    loading: false,
    hasMore: false,
    loaded: false,
    merchantName: '',
    selected: {},
    selectedCount: 0,
    selectedTotalText: formatFen(0),
    allSelected: false,
    paying: false,
  },

  onShow() {
    return this.start()
  },

  async start() {
    let result
    try {
      result = await api.ensureLogin()
    } catch (err) {
      api.showError(err.message)
      return
    }
    if (!result.is_bound) {
      wx.reLaunch({ url: '/pages/bind/bind' })
      return
    }
    const merchant = session.currentMerchant()
    this.setData({ merchantName: merchant ? merchant.merchant_name : '' })
    await this.reload()
  },

  onPullDownRefresh() {
    return this.reload().then(() => wx.stopPullDownRefresh())
  },

  onReachBottom() {
    if (this.data.hasMore && !this.data.loading) return this.loadPage(this.data.page + 1)
    return Promise.resolve()
  },

  onTabTap(e) {
    const status = e.currentTarget.dataset.status
    if (status === this.data.status) return Promise.resolve()
    this.setData({ status })
    return this.reload()
  },

  reload() {
    this.setData({ items: [], page: 0, total: 0, hasMore: false, loaded: false })
    this.clearSelection()
    return this.loadPage(1)
  },

  loadPage(page) {
    return loadStatusPage(this, '/bills', billView, page)
  },

  onBillTap(e) {
    wx.navigateTo({ url: '/pages/bill/bill?id=' + e.currentTarget.dataset.id })
  },

  clearSelection() {
    this.setData({ selected: {}, selectedCount: 0, selectedTotalText: formatFen(0), allSelected: false })
  },

  applySelection(selected) {
    const chosen = this.data.items.filter((b) => selected[b.id])
    const payable = this.data.items.filter((b) => b.payable)
    this.setData({
      selected,
      selectedCount: chosen.length,
      selectedTotalText: formatFen(sumFen(chosen.map((b) => b.outstanding_fen))),
      allSelected: payable.length > 0 && chosen.length === payable.length,
    })
  },

  onToggleSelect(e) {
    const id = e.currentTarget.dataset.id
    const bill = this.data.items.find((b) => String(b.id) === String(id))
    if (!bill || !bill.payable) return
    const selected = Object.assign({}, this.data.selected)
    if (selected[bill.id]) delete selected[bill.id]
    else selected[bill.id] = true
    this.applySelection(selected)
  },

  onToggleAll() {
    const selected = {}
    if (!this.data.allSelected) {
      this.data.items.forEach((b) => {
        if (b.payable) selected[b.id] = true
      })
    }
    this.applySelection(selected)
  },

  async onPaySelected() {
    const ids = this.data.items.filter((b) => this.data.selected[b.id]).map((b) => b.id)
    if (!ids.length) {
      wx.showToast({ title: '请先勾选要缴的账单', icon: 'none' })
      return
    }
    if (this.data.paying) return
    this.setData({ paying: true })
    try {
      const outcome = await payBills(ids)
      if (outcome !== 'cancelled' && outcome !== 'failed') await this.reload()
    } finally {
      this.setData({ paying: false })
    }
  },
})
