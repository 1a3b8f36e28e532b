// 登录 / 绑定商户：店主用手机号绑定，店员扫摊位二维码绑定。
const api = require('../../utils/api')
const config = require('../../config')
const session = require('../../utils/session')
const { extractBindToken } = require('../../utils/bind')

Page({
  data: {
    loading: true,
    loggedOut: false,
    isBound: false,
    merchants: [],
    binding: false,
    errorText: '',
  },

  onLoad(options) {
    const query = options || {}
    this.scannedLink = query.q ? String(query.q) : ''
    if (query.logout) {
      this.setData({ loading: false, loggedOut: true })
    }
  },

  onShow() {
    if (this.data.loggedOut) return Promise.resolve()
    return this.start()
  },

  async start() {
    this.setData({ loading: true, errorText: '' })
    try {
      const result = await api.ensureLogin()
      this.setData({ loading: false, isBound: !!result.is_bound, merchants: result.merchants || [] })
      if (this.scannedLink) {
        // 用微信扫一扫摊位二维码打开小程序
        const link = this.scannedLink
        this.scannedLink = ''
        await this.bindWith({ bind_token: extractBindToken(link) })
      } else if (result.is_bound && !this.stayHere()) {
        wx.switchTab({ url: '/pages/bills/bills' })
      }
    } catch (err) {
      this.setData({ loading: false, errorText: err.message || '登录失败，请稍后再试' })
    }
  },

  // 从“我的”进入（绑定其他商户）时停留在本页
  stayHere() {
    const pages = typeof getCurrentPages === 'function' ? getCurrentPages() : []
    return pages.length > 1
  },

  onRelogin() {
    this.setData({ loggedOut: false })
    return this.start()
  },

  // <button open-type="getPhoneNumber">：只把微信给的 code 交给服务器，由服务器向微信查询手机号
  onGetPhoneNumber(e) {
    const detail = (e && e.detail) || {}
    if (!detail.code) {
      wx.showToast({ title: '未授权手机号，已取消', icon: 'none' })
      return Promise.resolve()
    }
    return api.registerDemoCode('phones', { code: detail.code, phone: config.DEMO_PHONE })
      .then(() => this.bindWith({ phone_code: detail.code }))
  },

  onScan() {
    return new Promise((resolve) => {
      wx.scanCode({
        onlyFromCamera: false,
        scanType: ['qrCode'],
        success: (res) => {
          const token = extractBindToken(res && res.result)
          if (!token) {
            wx.showModal({ title: '提示', content: '二维码内容无效，请扫描摊位上的商户绑定二维码', showCancel: false })
            resolve()
            return
          }
          resolve(this.bindWith({ bind_token: token }))
        },
        fail: () => resolve(),
      })
    })
  },

  async bindWith(body) {
    if (body.bind_token === '') {
      wx.showModal({ title: '提示', content: '二维码内容无效，请扫描摊位上的商户绑定二维码', showCancel: false })
      return
    }
    if (this.data.binding) return
    this.setData({ binding: true, errorText: '' })
    try {
      const result = await api.post('/auth/bind', body)
      session.setMerchants(result.merchants)
      if (result.bound && result.bound.length) session.setMerchantId(result.bound[0].merchant_id)
      const names = (result.bound || []).map((m) => m.merchant_name).join('、')
      this.setData({ binding: false, isBound: !!result.is_bound, merchants: result.merchants || [] })
      wx.showToast({ title: '绑定成功', icon: 'success' })
      if (names) this.setData({ boundText: '已绑定：' + names })
      wx.switchTab({ url: '/pages/bills/bills' })
    } catch (err) {
      this.setData({ binding: false, errorText: err.message })
    }
  },
})
