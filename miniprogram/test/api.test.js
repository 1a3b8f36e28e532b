const api = require('../utils/api')
const session = require('../utils/session')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')

let fake
beforeEach(() => {
  fake = new FakeApi()
  global.wx = createWx(fake)
})

function calls(path) {
  return fake.requests.filter((r) => r.path === path)
}

test('首次请求先用 wx.login 的 code 登录，再带 Bearer 令牌请求', async () => {
  const data = await api.get('/bills?status=unpaid&page=1')
  expect(data.total).toBe(3)
  const login = calls('/auth/login')
  expect(login).toHaveLength(1)
  expect(login[0].data).toEqual({ code: 'wx-code-1' })
  const token = wx.storage[session.KEYS.token]
  expect(token).toBeTruthy()
  expect(calls('/bills')[0].header.Authorization).toBe('Bearer ' + token)
  expect(calls('/bills')[0].header['X-Merchant-Id']).toBe('12')
})

test('401：重新登录一次并重试一次', async () => {
  await api.get('/me')
  fake.expireTokens()
  const me = await api.get('/me')
  expect(me.merchant.name).toBe('张记蔬菜')
  expect(wx.login).toHaveBeenCalledTimes(2)
  expect(calls('/auth/login')).toHaveLength(2)
  const meCalls = calls('/me')
  expect(meCalls).toHaveLength(3)
  expect(meCalls[1].header.Authorization).not.toBe(meCalls[2].header.Authorization)
  expect(shownMessages(wx)).toEqual([])
})

test('重新登录后仍然 401：不再循环，提示错误', async () => {
  await api.get('/me')
  fake.override('GET /me', { statusCode: 401, data: { error: { code: 'invalid_token', message: '登录已失效，请重新登录' } } }, false)
  await expect(api.get('/me')).rejects.toMatchObject({ status: 401, code: 'invalid_token' })
  expect(calls('/auth/login')).toHaveLength(2)
  expect(calls('/me')).toHaveLength(3)
  expect(shownMessages(wx)).toEqual(['登录已失效，请重新登录'])
})

test('错误信封里的中文信息展示给用户', async () => {
  await expect(api.get('/bills/999')).rejects.toMatchObject({ status: 404, code: 'bill_not_found' })
  expect(shownMessages(wx)).toEqual(['账单不存在'])
  await expect(api.post('/payments', { bill_ids: [40] })).rejects.toMatchObject({ code: 'bill_not_payable' })
  expect(shownMessages(wx)).toContain('账单 JJ-202609-000040 已结清')
})

test('silent 时不提示，由调用方处理', async () => {
  await expect(api.get('/bills/999', { silent: true })).rejects.toMatchObject({ code: 'bill_not_found' })
  expect(shownMessages(wx)).toEqual([])
})

test('429：提示操作太频繁', async () => {
  await api.get('/me')
  fake.override('GET /me', { statusCode: 429, data: { error: { code: 'rate_limited', message: '请求过于频繁，请稍后再试' } } })
  await expect(api.get('/me')).rejects.toMatchObject({ status: 429 })
  expect(shownMessages(wx)[0]).toContain('操作太频繁')
})

test('网络失败：明确提示检查网络', async () => {
  await api.get('/me')
  wx.network.down = true
  await expect(api.get('/me')).rejects.toMatchObject({ code: 'network_error' })
  expect(shownMessages(wx)).toEqual(['网络连接失败，请检查网络后重试'])
})

test('登录凭证无效：显示服务器的信息', async () => {
  wx.login.mockImplementationOnce((req) => Promise.resolve().then(() => req.success({ code: 'bad' })))
  await expect(api.get('/me')).rejects.toMatchObject({ code: 'invalid_code' })
  expect(shownMessages(wx)).toEqual(['登录凭证无效，请重新进入小程序'])
})

test('未绑定商户（403 not_bound）时转到绑定页', async () => {
  fake.nextOpenid = 'o-new'
  await expect(api.get('/bills')).rejects.toMatchObject({ code: 'not_bound' })
  expect(wx.reLaunch).toHaveBeenCalledWith({ url: '/pages/bind/bind' })
})

test('所选商户已解除绑定：改用默认商户重试', async () => {
  fake.bindings['o-owner'].push({ merchant_id: 15, role: 'owner', bound_via: 'phone' })
  await api.get('/me')
  session.setMerchantId(15)
  fake.bindings['o-owner'] = fake.bindings['o-owner'].filter((b) => b.merchant_id !== 15)
  const me = await api.get('/me')
  expect(me.merchant.id).toBe(12)
  expect(session.getMerchantId()).toBe(12)
})

test('并发请求只登录一次', async () => {
  await Promise.all([api.get('/me'), api.get('/bills'), api.get('/bills?status=paid')])
  expect(calls('/auth/login')).toHaveLength(1)
})

test('退出登录：注销令牌并清除本地状态', async () => {
  await api.get('/me')
  const token = wx.storage[session.KEYS.token]
  await api.logout()
  const logout = calls('/auth/logout')
  expect(logout).toHaveLength(1)
  expect(logout[0].header.Authorization).toBe('Bearer ' + token)
  expect(fake.tokens[token]).toBeUndefined()
  expect(session.getToken()).toBeNull()
  expect(session.getMerchantId()).toBeNull()
})

describe('本地演示模式（config.FAKE_WECHAT_BASE）', () => {
  const config = require('../config')
  afterEach(() => {
    config.FAKE_WECHAT_BASE = ''
  })

  test('登录前把 wx.login 的 code 登记到假微信服务器', async () => {
    config.FAKE_WECHAT_BASE = 'http://127.0.0.1:9100'
    global.wx = createWx(fake, { fakeWechatBase: 'http://127.0.0.1:9100' })
    await api.get('/me')
    expect(wx.fakeWechatCalls).toEqual([
      { url: 'http://127.0.0.1:9100/_fake/codes', data: { code: 'wx-code-1', openid: 'devtools-demo-user' } },
    ])
  })

  test('默认关闭：不访问假微信服务器', async () => {
    global.wx = createWx(fake, { fakeWechatBase: 'http://127.0.0.1:9100' })
    await api.get('/me')
    expect(wx.fakeWechatCalls).toEqual([])
  })

  test('API 不在本机时即使填写了也不生效', async () => {
    config.FAKE_WECHAT_BASE = 'http://127.0.0.1:9100'
    const base = config.API_BASE
    config.API_BASE = 'https://market.example.com/api/mp/v1'
    try {
      await expect(api.registerDemoCode('codes', { code: 'x', openid: 'y' })).resolves.toBeUndefined()
      expect(wx.request).not.toHaveBeenCalled()
    } finally {
      config.API_BASE = base
    }
  })
})

test('upload：multipart 字段 file，带令牌与商户；回答的字符串按 JSON 解析', async () => {
  wx.queueMedia([{ type: 'image/jpeg' }])
  const path = Object.keys(wx.media)[0]
  const res = await api.upload('/tickets/72/photos', path)
  expect(res).toEqual({ id: 901, url: 'http://127.0.0.1:5000/api/mp/v1/ticket-photos/sig-901' })
  const req = wx.uploadFile.mock.calls[0][0]
  expect(req.name).toBe('file')
  expect(req.header.Authorization).toBe('Bearer ' + wx.storage[session.KEYS.token])
  expect(req.header['X-Merchant-Id']).toBe('12')
  expect(fake.tickets.find((t) => t.id === 72).photos).toHaveLength(1)
})

test('upload：错误信封的中文信息；网关的 413（不是 JSON）给出本地说明；网络失败', async () => {
  wx.queueMedia([{ type: 'image/gif' }])
  const path = Object.keys(wx.media)[0]
  await expect(api.upload('/tickets/72/photos', path)).rejects.toMatchObject({ status: 415, code: 'photo_type' })
  await expect(api.upload('/tickets/81/photos', path)).rejects.toMatchObject({ status: 404, code: 'ticket_not_found' })
  fake.override('POST /tickets/72/photos', { statusCode: 413, data: '<html><body>413 Request Entity Too Large</body></html>' })
  await expect(api.upload('/tickets/72/photos', path)).rejects.toMatchObject({ status: 413 })
  wx.network.down = true
  await expect(api.upload('/tickets/72/photos', path)).rejects.toMatchObject({ code: 'network_error' })
  // 短的用轻提示，长的用对话框
  expect(shownMessages(wx)).toHaveLength(4)
  expect(shownMessages(wx)).toEqual(expect.arrayContaining(['只能上传 JPG 或 PNG 格式的照片', '工单不存在', '文件太大，无法上传', '网络连接失败，请检查网络后重试']))
})
