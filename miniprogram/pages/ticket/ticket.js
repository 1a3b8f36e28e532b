// 工单详情：状态、描述、照片（可预览）、处理人、处理进度；取消、未解决重新处理、评价并关闭；处理中可补传照片。
const api = require('../../utils/api')
const config = require('../../config')
const { ticketView, formatDateTime, TICKET_ACTION, TICKET_STATUS } = require('../../utils/format')
const { choosePhotos, uploadPhotos, failureText } = require('../../utils/photos')

const PHOTO_RELOAD_INTERVAL_MS = 60 * 1000

const NOTE_MAX = 500
const COMMENT_MAX = 300
const STARS = [1, 2, 3, 4, 5]

function eventView(event, shownIds) {
  return Object.assign({}, event, {
    atText: formatDateTime(event.at),
    actionText: TICKET_ACTION[event.action] || event.action,
    statusText: event.status_after ? TICKET_STATUS[event.status_after] || event.status_after : '',
    byText: event.by || '',
    // 提交时的照片已在上方“照片”里显示，进度里只列其余照片
    photos: (event.photos || []).filter((p) => !shownIds[p.id]),
  })
}

// 进度按时间从新到旧排列
function timeline(events, shownIds) {
  return (events || [])
    .map((e, i) => ({ e, i, t: Date.parse(e.at) || 0 }))
    .sort((a, b) => b.t - a.t || b.i - a.i)
    .map(({ e }) => eventView(e, shownIds))
}

function detailView(ticket) {
  const view = ticketView(ticket)
  const photos = ticket.photos || []
  view.reportPhotos = photos.filter((p) => p.stage === 'report')
  const shownIds = {}
  view.reportPhotos.forEach((p) => { shownIds[p.id] = true })
  view.events = timeline(ticket.events, shownIds)
  // 不属于任何进度记录的处理照片
  const inEvents = {}
  ;(ticket.events || []).forEach((e) => (e.photos || []).forEach((p) => { inEvents[p.id] = true }))
  view.otherPhotos = photos.filter((p) => p.stage !== 'report' && !inEvents[p.id])
  // 没填标题时服务器用描述的开头作标题：不再重复显示
  view.showTitle = !!ticket.title && (ticket.description || '').indexOf(ticket.title) !== 0
  view.acceptedText = formatDateTime(ticket.accepted_at)
  view.resolvedText = formatDateTime(ticket.resolved_at)
  view.closedText = formatDateTime(ticket.closed_at)
  view.ratingStars = ticket.rating ? '★★★★★'.slice(0, ticket.rating) + '☆☆☆☆☆'.slice(0, 5 - ticket.rating) : ''
  view.canAddPhotos = view.isOpen && view.reportPhotos.length < config.TICKET_PHOTO_MAX
  return view
}

Page({
  data: {
    id: null,
    ticket: null,
    loading: true,
    busy: false,
    mode: '', // '' | 'reopen' | 'rate'
    note: '',
    noteMax: NOTE_MAX,
    stars: STARS,
    rating: 0,
    comment: '',
    commentMax: COMMENT_MAX,
    progressText: '',
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
      const ticket = await api.get('/tickets/' + this.data.id)
      this.show(ticket)
    } catch (err) {
      // 错误已提示（别人的工单与不存在的一样：工单不存在）
    } finally {
      this.setData({ loading: false })
    }
  },

  show(ticket) {
    this.setData({ ticket: detailView(ticket), mode: '', note: '', rating: 0, comment: '' })
  },

  // 签名的照片地址 1 小时后失效：页面开着超过这个时间时图片加载失败，重新读取工单换新地址（每分钟至多一次）
  onPhotoError() {
    const now = Date.now()
    if (this.photoReloadAt && now - this.photoReloadAt < PHOTO_RELOAD_INTERVAL_MS) return Promise.resolve()
    this.photoReloadAt = now
    return this.load()
  },

  onPreviewPhoto(e) {
    const group = e.currentTarget.dataset.group || []
    wx.previewImage({ current: e.currentTarget.dataset.url, urls: group.map((p) => p.url) })
  },

  // 状态变更：成功时按服务器的回答重新显示；409（状态已变）时重新读取工单
  async act(path, body, doneText) {
    if (this.data.busy) return
    this.setData({ busy: true })
    try {
      const ticket = await api.post(`/tickets/${this.data.id}/${path}`, body)
      this.show(ticket)
      wx.showToast({ title: doneText, icon: 'success' })
    } catch (err) {
      if (err.status === 409) await this.load()
    } finally {
      this.setData({ busy: false })
    }
  },

  onCancel() {
    const ticket = this.data.ticket
    if (!ticket || !ticket.can_cancel) return Promise.resolve()
    return new Promise((resolve) => {
      wx.showModal({
        title: '取消工单',
        content: '确定取消这个工单吗？',
        editable: true,
        placeholderText: '取消原因（选填）',
        success: (res) => {
          if (!res.confirm) {
            resolve()
            return
          }
          const note = typeof res.content === 'string' ? res.content.trim().slice(0, NOTE_MAX) : ''
          this.act('cancel', note ? { note } : {}, '已取消').then(resolve)
        },
        fail: () => resolve(),
      })
    })
  },

  onShowReopen() {
    this.setData({ mode: 'reopen', note: '' })
  },

  onShowRate() {
    this.setData({ mode: 'rate', rating: 0, comment: '' })
  },

  onCloseForm() {
    this.setData({ mode: '' })
  },

  onNoteInput(e) {
    this.setData({ note: e.detail.value || '' })
  },

  onCommentInput(e) {
    this.setData({ comment: e.detail.value || '' })
  },

  onStarTap(e) {
    this.setData({ rating: Number(e.currentTarget.dataset.score) })
  },

  onSubmitReopen() {
    const note = this.data.note.trim()
    if (!note) {
      wx.showToast({ title: '请说明哪里还没有解决', icon: 'none' })
      return Promise.resolve()
    }
    if (note.length > NOTE_MAX) {
      wx.showToast({ title: `说明不能超过 ${NOTE_MAX} 字`, icon: 'none' })
      return Promise.resolve()
    }
    return this.act('reopen', { note }, '已重新提交')
  },

  onSubmitRating() {
    const rating = Math.round(Number(this.data.rating))
    if (!(rating >= 1 && rating <= 5)) {
      wx.showToast({ title: '请选择 1 至 5 星', icon: 'none' })
      return Promise.resolve()
    }
    const comment = this.data.comment.trim()
    if (comment.length > COMMENT_MAX) {
      wx.showToast({ title: `评价不能超过 ${COMMENT_MAX} 字`, icon: 'none' })
      return Promise.resolve()
    }
    const body = { rating }
    if (comment) body.comment = comment
    return this.act('rating', body, '感谢评价')
  },

  async onAddPhotos() {
    const ticket = this.data.ticket
    if (!ticket || !ticket.canAddPhotos || this.data.busy) return
    const files = await choosePhotos(config.TICKET_PHOTO_MAX - ticket.reportPhotos.length)
    if (!files.length) return
    this.setData({ busy: true })
    const result = await uploadPhotos(ticket.id, files.map((f) => f.path), (n, total) => {
      this.setData({ progressText: `正在上传照片 第 ${n}/${total} 张` })
      wx.showLoading({ title: `第 ${n}/${total} 张`, mask: true })
    })
    wx.hideLoading()
    this.setData({ progressText: '', busy: false })
    if (result.failures.length) {
      api.showError(`有照片未能上传（${failureText(result.failures)}）`)
    } else {
      wx.showToast({ title: '照片已上传', icon: 'success' })
    }
    if (result.uploaded) await this.load()
  },
})
