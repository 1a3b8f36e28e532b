// 报修：处理中 / 待确认 / 已关闭的工单（报修、投诉、建议），分页加载；新建工单。
const api = require('../../utils/api')
const { ticketView } = require('../../utils/format')
const { loadStatusPage } = require('../../utils/paged')

const TABS = [
  { key: 'open', label: '处理中' },
  { key: 'resolved', label: '待确认' },
  { key: 'closed', label: '已关闭' },
]

Page({
  data: {
    tabs: TABS,
    status: 'open',
    items: [],
    page: 0,
    total: 0,
    loading: false,
    hasMore: false,
    loaded: false,
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
    return this.loadPage(1)
  },

  loadPage(page) {
    return loadStatusPage(this, '/tickets', ticketView, page)
  },

  onTicketTap(e) {
    wx.navigateTo({ url: '/pages/ticket/ticket?id=' + e.currentTarget.dataset.id })
  },

  onNew() {
    wx.navigateTo({ url: '/pages/ticket-new/ticket-new' })
  },
})
