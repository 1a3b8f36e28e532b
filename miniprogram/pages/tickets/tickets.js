// 报修：处理中 / 待确认 / 已关闭的工单（报修、投诉、建议），分页加载；新建工单。
const api = require('../../utils/api')
const config = require('../../config')
const { ticketView } = require('../../utils/format')

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

  async loadPage(page) {
    const status = this.data.status
    this.setData({ loading: true })
    try {
      const data = await api.get(`/tickets?status=${status}&page=${page}&page_size=${config.PAGE_SIZE}`)
      if (status !== this.data.status) return // 加载期间切换了标签
      const items = (page === 1 ? [] : this.data.items).concat(data.items.map(ticketView))
      this.setData({
        items,
        page,
        total: data.total,
        hasMore: items.length < data.total,
        loaded: true,
      })
    } catch (err) {
      this.setData({ loaded: true })
    } finally {
      this.setData({ loading: false })
    }
  },

  onTicketTap(e) {
    wx.navigateTo({ url: '/pages/ticket/ticket?id=' + e.currentTarget.dataset.id })
  },

  onNew() {
    wx.navigateTo({ url: '/pages/ticket-new/ticket-new' })
  },
})
