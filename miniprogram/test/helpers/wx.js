// 模拟的 wx：wx.request 交给 FakeApi 作答，其余接口记录调用。
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
    showModal: jest.fn((req) => later(() => req.success && req.success({ confirm: options.confirm !== false, cancel: options.confirm === false }))),
    showLoading: jest.fn(),
    hideLoading: jest.fn(),
    navigateTo: jest.fn(),
    redirectTo: jest.fn(),
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
