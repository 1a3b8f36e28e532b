// 我的：商户资料、摊位、联系方式、通知设置、切换商户、退出登录。
const api = require('../../utils/api')
const session = require('../../utils/session')

const NOTIFY_OPTIONS = [
  { key: 'notify_wechat', label: '微信消息通知' },
  { key: 'notify_sms', label: '短信通知' },
  { key: 'notify_bill', label: '新账单提醒' },
  { key: 'notify_overdue', label: '逾期提醒' },
  { key: 'notify_ticket', label: '报修进度通知' },
]

function unitView(unit) {
  const area = unit.area_m2 ? unit.area_m2.replace(/\.?0+$/, '') : ''
  return Object.assign({}, unit, { areaText: area ? `${area}㎡` : '' })
}

Page({
  data: {
    loaded: false,
    me: null,
    isOwner: false,
    units: [],
    merchants: [],
    currentMerchantId: null,
    notifyOptions: NOTIFY_OPTIONS,
    notify: {},
    saving: false,
  },

  onShow() {
    return this.load()
  },

  async load() {
    try {
      const me = await api.get('/me')
      session.setMerchants(me.merchants)
      if (!session.getMerchantId()) session.setMerchantId(me.merchant.id)
      const notify = {}
      NOTIFY_OPTIONS.forEach((o) => {
        notify[o.key] = me.merchant[o.key] === true
      })
      this.setData({
        loaded: true,
        me,
        isOwner: me.role === 'owner',
        units: me.units.map(unitView),
        merchants: me.merchants,
        currentMerchantId: me.merchant.id,
        notify,
      })
    } catch (err) {
      this.setData({ loaded: true })
    }
  },

  // <switch> 的 e.detail.value 是布尔值；以 JSON true/false 提交
  async onNotifyChange(e) {
    const key = e.currentTarget.dataset.key
    const value = e.detail.value === true
    const before = this.data.notify[key]
    this.setData({ ['notify.' + key]: value, saving: true })
    try {
      const me = await api.patch('/me', { [key]: value })
      const notify = {}
      NOTIFY_OPTIONS.forEach((o) => {
        notify[o.key] = me.merchant[o.key] === true
      })
      this.setData({ notify, me })
      wx.showToast({ title: '已保存', icon: 'success' })
    } catch (err) {
      this.setData({ ['notify.' + key]: before })
    } finally {
      this.setData({ saving: false })
    }
  },

  onSwitchMerchant(e) {
    const id = Number(e.currentTarget.dataset.id)
    if (id === this.data.currentMerchantId) return Promise.resolve()
    const target = this.data.merchants.find((m) => m.merchant_id === id)
    if (!target) return Promise.resolve()
    session.setMerchantId(id)
    return this.load().then(() => {
      wx.showToast({ title: '已切换到' + target.merchant_name, icon: 'none' })
    })
  },

  onBindMore() {
    wx.navigateTo({ url: '/pages/bind/bind' })
  },

  onLogout() {
    return new Promise((resolve) => {
      wx.showModal({
        title: '退出登录',
        content: '确定退出登录吗？',
        success: (res) => {
          if (!res.confirm) {
            resolve()
            return
          }
          api.logout().then(() => {
            wx.reLaunch({ url: '/pages/bind/bind?logout=1' })
            resolve()
          })
        },
        fail: () => resolve(),
      })
    })
  },
})
