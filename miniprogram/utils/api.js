// 商户小程序 API 的请求封装（JSON、上传、下载）：地址、令牌、当前商户、错误提示、401 重新登录。
const config = require('../config')
const session = require('./session')

const MESSAGES = {
  network: '网络连接失败，请检查网络后重试',
  rateLimited: '操作太频繁，请稍后再试',
  unknown: '请求失败，请稍后再试',
  loginFailed: '登录失败，请稍后再试',
  tooLarge: '文件太大，无法上传',
}

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

function url(path) {
  return config.API_BASE.replace(/\/+$/, '') + path
}

// 把错误告诉用户：短的用轻提示，长的用对话框。
function showError(message) {
  const text = message || MESSAGES.unknown
  if (text.length <= 14) {
    wx.showToast({ title: text, icon: 'none', duration: 2500 })
  } else {
    wx.showModal({ title: '提示', content: text, showCancel: false })
  }
}

function errorFromResponse(statusCode, body) {
  const error = body && typeof body === 'object' && body.error
  if (statusCode === 429) {
    return new ApiError(429, (error && error.code) || 'rate_limited', MESSAGES.rateLimited)
  }
  if (error && typeof error === 'object') {
    return new ApiError(statusCode, error.code || 'error', error.message || MESSAGES.unknown, error.details)
  }
  return new ApiError(statusCode, 'http_' + statusCode, MESSAGES.unknown)
}

function networkError(res) {
  return new ApiError(0, 'network_error', MESSAGES.network, res && res.errMsg)
}

function headers(withAuth) {
  const header = { 'Content-Type': 'application/json' }
  const token = session.getToken()
  if (withAuth && token) header.Authorization = 'Bearer ' + token
  const merchantId = session.getMerchantId()
  if (withAuth && merchantId) header['X-Merchant-Id'] = String(merchantId)
  return header
}

function rawRequest(method, path, data, withAuth) {
  return new Promise((resolve, reject) => {
    wx.request({
      url: url(path),
      method,
      data: data === undefined ? undefined : data,
      header: headers(withAuth),
      dataType: 'json',
      success: (res) => resolve(res),
      fail: (res) => reject(networkError(res)),
    })
  })
}

function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res && res.code ? resolve(res.code) : reject(new ApiError(0, 'wx_login_failed', MESSAGES.loginFailed))),
      fail: () => reject(new ApiError(0, 'wx_login_failed', MESSAGES.loginFailed)),
    })
  })
}

// 本地演示：把开发者工具给出的 code 登记到假微信服务器（见 config.js），正式环境不做任何事。
function demoMode() {
  return !!config.FAKE_WECHAT_BASE && /^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(config.API_BASE)
}

function registerDemoCode(kind, body) {
  if (!demoMode()) return Promise.resolve()
  return new Promise((resolve) => {
    wx.request({
      url: config.FAKE_WECHAT_BASE.replace(/\/+$/, '') + '/_fake/' + kind,
      method: 'POST',
      data: body,
      header: { 'Content-Type': 'application/json' },
      success: () => resolve(),
      fail: () => resolve(),
    })
  })
}

let pendingLogin = null

// wx.login -> POST /auth/login；保存令牌与绑定的商户。并发调用只登录一次。
function login() {
  if (pendingLogin) return pendingLogin
  pendingLogin = (async () => {
    const code = await wxLogin()
    await registerDemoCode('codes', { code, openid: config.DEMO_OPENID })
    const res = await rawRequest('POST', '/auth/login', { code }, false)
    if (res.statusCode !== 200) throw errorFromResponse(res.statusCode, res.data)
    session.setToken(res.data.token)
    session.setMerchants(res.data.merchants)
    return res.data
  })()
  pendingLogin.then(
    () => { pendingLogin = null },
    () => { pendingLogin = null },
  )
  return pendingLogin
}

// 已有令牌就用它，否则登录。
async function ensureLogin() {
  if (session.getToken()) return { is_bound: session.getMerchants().length > 0, merchants: session.getMerchants() }
  return login()
}

function goBind() {
  wx.reLaunch({ url: '/pages/bind/bind' })
}

// 带令牌发出请求（send 每次都重新取令牌与商户）：401 重新登录一次再试一次；所选商户已解绑时改用默认商户；
// 2xx 返回 JSON，其余抛出 ApiError 并提示（silent 时不提示）。
async function withSession(send, silent) {
  try {
    if (!session.getToken()) await login()
    let res = await send()
    if (res.statusCode === 401) {
      // 令牌过期或已注销：重新登录一次，再试一次
      await login()
      res = await send()
    } else if (res.statusCode === 403 && res.data && res.data.error && res.data.error.code === 'merchant_not_bound') {
      // 所选商户已解除绑定：改用默认商户再试一次
      session.setMerchantId(null)
      const relogin = await login()
      if (!relogin.is_bound) {
        goBind()
        throw errorFromResponse(res.statusCode, res.data)
      }
      res = await send()
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      return res.statusCode === 204 ? null : res.data
    }
    const err = errorFromResponse(res.statusCode, res.data)
    if (err.code === 'not_bound') {
      session.setMerchants([])
      goBind()
    }
    throw err
  } catch (err) {
    const error = err instanceof ApiError ? err : new ApiError(0, 'client_error', MESSAGES.unknown)
    if (!silent && error.code !== 'not_bound') showError(error.message)
    throw error
  }
}

/**
 * 调用 API。options: method, data, silent（不提示错误）。
 * 成功时返回 JSON；失败时提示中文信息并抛出 ApiError（err.code 为 API 的错误码）。
 */
function request(path, options = {}) {
  const method = options.method || 'GET'
  return withSession(() => rawRequest(method, path, options.data, true), !!options.silent)
}

// wx.uploadFile 的回答 data 是字符串：按 JSON 解析；413 若来自网关（不是 API 的错误信封）给出本地说明。
function uploadResponse(res) {
  let data = res.data
  if (typeof data === 'string') {
    try {
      data = data ? JSON.parse(data) : null
    } catch (e) {
      data = null
    }
  }
  if (res.statusCode === 413 && !(data && data.error)) {
    data = { error: { code: 'payload_too_large', message: MESSAGES.tooLarge } }
  }
  return { statusCode: res.statusCode, data }
}

function rawUpload(path, filePath, formData) {
  return new Promise((resolve, reject) => {
    const header = headers(true)
    // multipart/form-data 的边界由 wx.uploadFile 自己填写，不能带 JSON 的 Content-Type
    delete header['Content-Type']
    const req = {
      url: url(path),
      filePath,
      name: 'file',
      header,
      success: (res) => resolve(uploadResponse(res)),
      fail: (res) => reject(networkError(res)),
    }
    if (formData) req.formData = formData
    wx.uploadFile(req)
  })
}

/**
 * 上传一个文件（multipart/form-data，字段名 file），令牌、商户、错误提示与 401 重新登录同 request。
 * options: formData, silent。返回服务器的 JSON。
 */
function upload(path, filePath, options = {}) {
  return withSession(() => rawUpload(path, filePath, options.formData), !!options.silent)
}

function rawDownload(path, filePath) {
  return new Promise((resolve, reject) => {
    const header = headers(true)
    delete header['Content-Type']
    const req = {
      url: url(path),
      header,
      // 指定 filePath 时成功回调给 res.filePath（带扩展名，部分机型的临时文件没有扩展名，无法打开 PDF）
      success: (res) => resolve(Object.assign({ path: res.filePath || res.tempFilePath }, res)),
      fail: (res) => reject(networkError(res)),
    }
    if (filePath) req.filePath = filePath
    wx.downloadFile(req)
  })
}

function readErrorFile(res) {
  try {
    const text = wx.getFileSystemManager().readFileSync(res.path, 'utf8')
    return errorFromResponse(res.statusCode, JSON.parse(text))
  } catch (e) {
    return errorFromResponse(res.statusCode, null)
  }
}

/**
 * 下载文件（带令牌），返回本地文件路径；401 时重新登录一次。
 * fileName：保存到用户目录时用的文件名（如 receipt-41.pdf）。
 */
async function download(path, fileName) {
  const filePath = fileName && wx.env && wx.env.USER_DATA_PATH ? `${wx.env.USER_DATA_PATH}/${fileName}` : undefined
  try {
    if (!session.getToken()) await login()
    let res = await rawDownload(path, filePath)
    if (res.statusCode === 401) {
      await login()
      res = await rawDownload(path, filePath)
    }
    if (res.statusCode === 200) return res.path
    throw readErrorFile(res)
  } catch (err) {
    const error = err instanceof ApiError ? err : new ApiError(0, 'client_error', MESSAGES.unknown)
    showError(error.message)
    throw error
  }
}

/** 退出登录：注销令牌（已失效也算成功），清除本地登录状态。 */
async function logout() {
  if (session.getToken()) {
    try {
      await rawRequest('POST', '/auth/logout', undefined, true)
    } catch (e) {
      // 网络失败时本地照样退出
    }
  }
  session.clear()
}

module.exports = {
  ApiError,
  registerDemoCode,
  MESSAGES,
  request,
  upload,
  download,
  login,
  ensureLogin,
  logout,
  showError,
  get: (path, options) => request(path, Object.assign({}, options, { method: 'GET' })),
  post: (path, data, options) => request(path, Object.assign({}, options, { method: 'POST', data })),
  patch: (path, data, options) => request(path, Object.assign({}, options, { method: 'PATCH', data })),
}
