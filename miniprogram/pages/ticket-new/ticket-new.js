// 新建工单：类别（报修 / 投诉 / 建议）、紧急（报修）、摊位（选填）、标题（选填）、描述、最多 9 张照片。
// 先 POST /tickets（JSON），再逐张上传照片；照片上传失败时工单照样保留，转到工单页（可在那里补传）。
const api = require('../../utils/api')
const config = require('../../config')
const { TICKET_KIND } = require('../../utils/format')
const { choosePhotos, uploadPhotos, failureText } = require('../../utils/photos')

const DESCRIPTION_MAX = 1000
const TITLE_MAX = 60
const KINDS = ['repair', 'complaint', 'suggestion'].map((key) => ({ key, label: TICKET_KIND[key] }))
const PLACEHOLDERS = {
  repair: '请描述需要维修的问题，如位置、损坏情况',
  complaint: '请描述投诉的事项，如时间、地点、经过',
  suggestion: '请写下您的建议',
}

Page({
  data: {
    ticketTemplate: '',
    kinds: KINDS,
    kind: 'repair',
    urgent: false,
    units: [],
    unitOptions: ['不指定摊位'],
    unitIndex: 0,
    title: '',
    description: '',
    descriptionLength: 0,
    descriptionMax: DESCRIPTION_MAX,
    titleMax: TITLE_MAX,
    placeholder: PLACEHOLDERS.repair,
    photos: [],
    photoMax: config.TICKET_PHOTO_MAX,
    submitting: false,
    progressText: '',
  },

  onLoad(options) {
    const query = options || {}
    const kind = KINDS.some((k) => k.key === query.kind) ? query.kind : 'repair'
    const patch = { kind, placeholder: PLACEHOLDERS[kind] }
    if (query.bill) {
      // 从账单页进入：描述里写明账单编号
      const description = `关于账单 ${decodeURIComponent(query.bill)}：`
      Object.assign(patch, { description, descriptionLength: description.length })
    }
    this.setData(patch)
    return this.loadUnits()
  },

  async loadUnits() {
    try {
      const me = await api.get('/me')
      const units = me.units || []
      this.setData({
        ticketTemplate: (me.subscribe_templates || {}).ticket_progress || '',
        units,
        unitOptions: ['不指定摊位'].concat(units.map((u) => (u.zone && u.zone.name ? `${u.code}（${u.zone.name}）` : u.code))),
      })
    } catch (err) {
      // 错误已提示；摊位为选填
    }
  },

  onKindTap(e) {
    const kind = e.currentTarget.dataset.kind
    this.setData({ kind, placeholder: PLACEHOLDERS[kind], urgent: kind === 'repair' ? this.data.urgent : false })
  },

  onUrgentChange(e) {
    this.setData({ urgent: e.detail.value === true })
  },

  onUnitChange(e) {
    this.setData({ unitIndex: Number(e.detail.value) || 0 })
  },

  onTitleInput(e) {
    this.setData({ title: e.detail.value })
  },

  onDescriptionInput(e) {
    const description = e.detail.value || ''
    this.setData({ description, descriptionLength: description.length })
  },

  async onAddPhotos() {
    const files = await choosePhotos(config.TICKET_PHOTO_MAX - this.data.photos.length)
    if (files.length) this.setData({ photos: this.data.photos.concat(files) })
  },

  onRemovePhoto(e) {
    const index = Number(e.currentTarget.dataset.index)
    this.setData({ photos: this.data.photos.filter((p, i) => i !== index) })
  },

  onPreviewPhoto(e) {
    const urls = this.data.photos.map((p) => p.path)
    wx.previewImage({ current: urls[Number(e.currentTarget.dataset.index)], urls })
  },

  // 本地检查：描述必填、不超过 1000 字；标题不超过 60 字
  validate() {
    const description = this.data.description.trim()
    if (!description) return '请填写问题描述'
    if (description.length > DESCRIPTION_MAX) return `描述不能超过 ${DESCRIPTION_MAX} 字`
    if (this.data.title.trim().length > TITLE_MAX) return `标题不能超过 ${TITLE_MAX} 字`
    return ''
  },

  body() {
    const body = { kind: this.data.kind, description: this.data.description.trim() }
    const title = this.data.title.trim()
    if (title) body.title = title
    const unit = this.data.unitIndex > 0 ? this.data.units[this.data.unitIndex - 1] : null
    if (unit) body.unit_id = unit.id
    if (this.data.kind === 'repair') body.urgency = this.data.urgent ? 'urgent' : 'normal'
    return body
  },

  // 受理、处理完成、关闭时用订阅消息通知商户：微信只允许在点击时请求授权，所以在提交时先请求。
  // 用户拒绝也照常提交（只是收不到通知）。
  requestSubscription() {
    const tmplId = this.data.ticketTemplate
    if (!tmplId || typeof wx.requestSubscribeMessage !== 'function') return Promise.resolve()
    return new Promise((resolve) => {
      wx.requestSubscribeMessage({ tmplIds: [tmplId], complete: () => resolve() })
    })
  },

  async onSubmit() {
    if (this.data.submitting) return
    const problem = this.validate()
    if (problem) {
      wx.showToast({ title: problem, icon: 'none' })
      return
    }
    this.setData({ submitting: true })
    await this.requestSubscription()
    let ticket
    try {
      ticket = await api.post('/tickets', this.body())
    } catch (err) {
      this.setData({ submitting: false }) // 错误已提示，表单保留
      return
    }
    const paths = this.data.photos.map((p) => p.path)
    let failures = []
    if (paths.length) {
      const result = await uploadPhotos(ticket.id, paths, (n, total) => {
        const progressText = `正在上传照片 第 ${n}/${total} 张`
        this.setData({ progressText })
        wx.showLoading({ title: `第 ${n}/${total} 张`, mask: true })
      })
      wx.hideLoading()
      failures = result.failures
    }
    this.setData({ progressText: '' })
    const open = () => wx.redirectTo({ url: '/pages/ticket/ticket?id=' + ticket.id })
    if (!failures.length) {
      wx.showToast({ title: '已提交', icon: 'success' })
      open()
      return
    }
    await new Promise((resolve) => {
      wx.showModal({
        title: '工单已提交',
        content: `工单 ${ticket.number} 已提交，但有照片未能上传（${failureText(failures)}）。可在工单页补传照片。`,
        showCancel: false,
        success: () => resolve(),
        fail: () => resolve(),
      })
    })
    open()
  },
})
