// 模拟的 wx：wx.request、wx.downloadFile、wx.uploadFile 交给 FakeApi 作答，其余接口记录调用。
const { BASE } = require('./fakeApi')

function parseUrl(url) {
  if (url.indexOf(BASE) !== 0) throw new Error('request outside the API base: ' + url)
  const rest = url.slice(BASE.length)
  const q = rest.indexOf('?')
  const path = q >= 0 ? rest.slice(0, q) : rest
  const query = {}
  if (q >= 0) {
    rest.slice(q + 1).split('&').filter(Boolean).forEach((part) => {
      const [k, v = ''] = part.split('=')
      query[decodeURIComponent(k)] = decodeURIComponent(v)
    })
  }
  return { path, query }
}

function later(fn) {
  Promise.resolve().then(fn)
}

function createWx(api, options = {}) {
  const storage = {}
  const files = {}
  let fileSeq = 0
  const network = { down: false }
  const fakeWechatCalls = []
  // 相册 / 相机里的照片：测试用 wx.queueMedia([{ size, type, sentSize }]) 排好下一次 chooseMedia 选中的照片
  const media = {}
  const mediaQueue = []
  let mediaSeq = 0

  const wx = {
    env: { USER_DATA_PATH: 'http://usr' },
    network,
    fakeWechatCalls,
    storage,
    files,
    request: jest.fn((req) => {
      later(() => {
        if (network.down) {
          if (req.fail) req.fail({ errMsg: 'request:fail timeout' })
          return
        }
        if (options.fakeWechatBase && req.url.indexOf(options.fakeWechatBase) === 0) {
          // 本地演示用的假微信控制接口
          fakeWechatCalls.push({ url: req.url, data: JSON.parse(JSON.stringify(req.data)) })
          req.success({ statusCode: 204, data: '', header: {} })
          return
        }
        const { path, query } = parseUrl(req.url)
        const header = Object.assign({}, req.header)
        // wx.request 把对象按 JSON 发送（Content-Type: application/json），服务器看到的是解析后的 JSON
        const data = req.data === undefined ? undefined : JSON.parse(JSON.stringify(req.data))
        const res = api.handle({ method: req.method || 'GET', path, query, header, data, raw: req.data })
        if (req.success) req.success({ statusCode: res.statusCode, data: res.data, header: res.header || {} })
      })
    }),
    downloadFile: jest.fn((req) => {
      later(() => {
        if (network.down) {
          if (req.fail) req.fail({ errMsg: 'downloadFile:fail' })
          return
        }
        const { path, query } = parseUrl(req.url)
        const res = api.handle({ method: 'GET', path, query, header: Object.assign({}, req.header), data: undefined })
        fileSeq += 1
        const content = typeof res.data === 'string' ? res.data : JSON.stringify(res.data)
        if (req.filePath) {
          files[req.filePath] = content
          if (req.success) req.success({ statusCode: res.statusCode, filePath: req.filePath })
        } else {
          const tempFilePath = `http://tmp/file-${fileSeq}.unknown`
          files[tempFilePath] = content
          if (req.success) req.success({ statusCode: res.statusCode, tempFilePath })
        }
      })
    }),
    getFileSystemManager: () => ({
      readFileSync: (p) => {
        if (!(p in files)) throw new Error('no such file')
        return files[p]
      },
    }),
    media,
    queueMedia(list) {
      mediaQueue.push(list.map((f) => {
        mediaSeq += 1
        const ext = f.type === 'image/png' ? 'png' : f.type === 'image/jpeg' ? 'jpg' : 'heic'
        const tempFilePath = `http://tmp/photo-${mediaSeq}.${ext}`
        const size = f.size === undefined ? 200 * 1024 : f.size
        // sentSize：服务器收到的大小（默认同 chooseMedia 报告的 size）
        media[tempFilePath] = { size, sentSize: f.sentSize === undefined ? size : f.sentSize, type: f.type || 'image/jpeg' }
        return tempFilePath
      }))
    },
    // 选图：按排好的照片作答（最多 count 张）；没有排好时如同用户取消
    chooseMedia: jest.fn((req) => later(() => {
      const paths = mediaQueue.shift()
      if (!paths) {
        if (req.fail) req.fail({ errMsg: 'chooseMedia:fail cancel' })
        return
      }
      const tempFiles = paths.slice(0, req.count).map((p) => ({ tempFilePath: p, size: media[p].size, fileType: 'image' }))
      req.success({ tempFiles, type: 'image' })
    })),
    // wx.uploadFile：multipart/form-data（除非调用方用 header 改掉了 Content-Type），文件放在 name 字段；
    // 回答的 data 是字符串
    uploadFile: jest.fn((req) => {
      later(() => {
        if (network.down) {
          if (req.fail) req.fail({ errMsg: 'uploadFile:fail' })
          return
        }
        const { path, query } = parseUrl(req.url)
        const header = Object.assign({}, req.header)
        const contentType = Object.keys(header).find((k) => k.toLowerCase() === 'content-type')
        const multipart = !contentType || /multipart\/form-data/i.test(header[contentType])
        const file = media[req.filePath]
        const files = file && req.name ? { [req.name]: { path: req.filePath, size: file.sentSize, type: file.type } } : {}
        const res = api.handle({ method: 'POST', path, query, header, data: Object.assign({}, req.formData), multipart, files })
        const data = typeof res.data === 'string' ? res.data : JSON.stringify(res.data)
        if (req.success) req.success({ statusCode: res.statusCode, data })
      })
    }),
    // 订阅消息授权：默认用户同意；测试可改为 reject
    subscribeAnswer: 'accept',
    requestSubscribeMessage: jest.fn(function (req) {
      const answer = this.subscribeAnswer
      later(() => {
        const res = { errMsg: 'requestSubscribeMessage:ok' }
        req.tmplIds.forEach((id) => { res[id] = answer })
        if (req.success) req.success(res)
        if (req.complete) req.complete(res)
      })
    }),
    previewImage: jest.fn((req) => later(() => req.success && req.success({ errMsg: 'previewImage:ok' }))),
    openDocument: jest.fn((req) => later(() => req.success && req.success({ errMsg: 'openDocument:ok' }))),
    login: jest.fn((req) => later(() => req.success({ code: api.issueCode(), errMsg: 'login:ok' }))),
    // 默认：用户确认付款，支付成功
    requestPayment: jest.fn((req) => later(() => {
      const outcome = options.payOutcome ? options.payOutcome(req) : 'ok'
      if (outcome === 'ok') {
        api.payByParams(req)
        req.success({ errMsg: 'requestPayment:ok' })
      } else {
        req.fail({ errMsg: outcome })
      }
    })),
    scanCode: jest.fn((req) => later(() => req.success({ result: options.scanResult || '', scanType: 'QR_CODE' }))),
    getStorageSync: jest.fn((k) => (k in storage ? storage[k] : '')),
    setStorageSync: jest.fn((k, v) => { storage[k] = v }),
    removeStorageSync: jest.fn((k) => { delete storage[k] }),
    clearStorageSync: jest.fn(() => Object.keys(storage).forEach((k) => delete storage[k])),
    showToast: jest.fn(),
    // 默认：用户点确定；可编辑的对话框（editable）返回 options.modalInput 作为输入的文字
    showModal: jest.fn((req) => later(() => req.success && req.success(Object.assign(
      { confirm: options.confirm !== false, cancel: options.confirm === false },
      req.editable ? { content: options.modalInput || '' } : {},
    )))),
    showLoading: jest.fn(),
    hideLoading: jest.fn(),
    navigateTo: jest.fn(),
    redirectTo: jest.fn(),
    navigateBack: jest.fn(),
    switchTab: jest.fn(),
    reLaunch: jest.fn(),
    stopPullDownRefresh: jest.fn(),
  }
  return wx
}

/** 所有提示给用户的文字（轻提示与对话框）。 */
function shownMessages(wx) {
  return wx.showToast.mock.calls.map((c) => c[0].title).concat(wx.showModal.mock.calls.map((c) => c[0].content))
}

module.exports = { createWx, shownMessages }
