const fs = require('fs')
const path = require('path')
const { ROOT, loadPage, renderPage, flush, text } = require('./helpers/page')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')
const session = require('../utils/session')
const { extractBindToken } = require('../utils/bind')

const pageId = loadPage('bind')

let api
beforeEach(() => {
  api = new FakeApi()
  api.nextOpenid = 'o-new' // 尚未绑定的微信用户
  global.wx = createWx(api)
})

async function openBind(options = {}) {
  const page = renderPage(pageId)
  page.instance.onLoad(options)
  await page.instance.onShow()
  await flush()
  return page
}

test('未绑定时停留在绑定页，显示两种绑定方式', async () => {
  const page = await openBind()
  expect(page.querySelector('.phone-btn')).toBeTruthy()
  // 模拟器的内置 button 不渲染属性：从页面模板确认它是微信的手机号按钮
  const wxml = fs.readFileSync(path.join(ROOT, 'pages/bind/bind.wxml'), 'utf8')
  const button = /<button[^>]*class="[^"]*phone-btn[^"]*"[^>]*>/.exec(wxml)[0]
  expect(button).toContain('open-type="getPhoneNumber"')
  expect(button).toContain('bindgetphonenumber="onGetPhoneNumber"')
  expect(page.querySelector('.scan-btn')).toBeTruthy()
  expect(wx.switchTab).not.toHaveBeenCalled()
})

test('手机号绑定只发送 code，不发送手机号', async () => {
  const page = await openBind()
  page.querySelector('.phone-btn').dispatchEvent('getphonenumber', {
    detail: { errMsg: 'getPhoneNumber:ok', code: 'phone-code-1', phoneNumber: '13800000001', encryptedData: 'x', iv: 'y' },
  })
  await flush()
  const bind = api.requests.filter((r) => r.path === '/auth/bind')
  expect(bind).toHaveLength(1)
  expect(bind[0].data).toEqual({ phone_code: 'phone-code-1' })
  expect(JSON.stringify(bind[0].raw)).not.toContain('13800000001')
  expect(shownMessages(wx)).toContain('绑定成功')
  expect(session.getMerchantId()).toBe(12)
  expect(wx.switchTab).toHaveBeenCalledWith({ url: '/pages/bills/bills' })
})

test('拒绝授权手机号：不请求绑定', async () => {
  const page = await openBind()
  page.querySelector('.phone-btn').dispatchEvent('getphonenumber', { detail: { errMsg: 'getPhoneNumber:fail user deny' } })
  await flush()
  expect(api.requests.filter((r) => r.path === '/auth/bind')).toHaveLength(0)
})

test('手机号未登记：显示服务器的中文错误', async () => {
  api.phones['phone-code-9'] = '13700000000'
  const page = await openBind()
  await page.instance.onGetPhoneNumber({ detail: { code: 'phone-code-9' } })
  await flush()
  expect(shownMessages(wx)).toContain('该手机号未登记为商户联系电话，请联系市场管理处')
  expect(text(page, '.error-text')).toBe('该手机号未登记为商户联系电话，请联系市场管理处')
  expect(wx.switchTab).not.toHaveBeenCalled()
})

test('扫描摊位二维码：从后台打印的链接中取出 bind_token 绑定为店员', async () => {
  global.wx = createWx(api, { scanResult: 'http://127.0.0.1:5000/mp/bind?t=IjEi.abc-DEF_1' })
  const page = await openBind()
  page.querySelector('.scan-btn').dispatchEvent('tap')
  await flush(10)
  const bind = api.requests.filter((r) => r.path === '/auth/bind')
  expect(bind.map((r) => r.data)).toEqual([{ bind_token: 'IjEi.abc-DEF_1' }])
  expect(session.getMerchantId()).toBe(15)
  expect(wx.switchTab).toHaveBeenCalledWith({ url: '/pages/bills/bills' })
})

test('扫到无效二维码：服务器拒绝时显示原因', async () => {
  global.wx = createWx(api, { scanResult: 'https://example.com/mp/bind?t=forged' })
  const page = await openBind()
  await page.instance.onScan()
  await flush()
  expect(shownMessages(wx)).toContain('二维码无效或已被篡改，请扫描摊位上的商户绑定二维码')
  expect(wx.switchTab).not.toHaveBeenCalled()
})

test('扫到不含令牌的二维码：不请求服务器', async () => {
  global.wx = createWx(api, { scanResult: 'https://example.com/other' })
  const page = await openBind()
  await page.instance.onScan()
  await flush()
  expect(api.requests.filter((r) => r.path === '/auth/bind')).toHaveLength(0)
  expect(shownMessages(wx)[0]).toContain('二维码内容无效')
})

test('用微信扫一扫打开（q 参数）时直接绑定', async () => {
  await openBind({ q: encodeURIComponent('http://127.0.0.1:5000/mp/bind?t=IjEi.abc-DEF_1') })
  await flush()
  expect(api.requests.filter((r) => r.path === '/auth/bind').map((r) => r.data)).toEqual([{ bind_token: 'IjEi.abc-DEF_1' }])
})

test('已绑定的用户打开绑定页直接进入账单', async () => {
  api.nextOpenid = 'o-owner'
  await openBind()
  expect(wx.switchTab).toHaveBeenCalledWith({ url: '/pages/bills/bills' })
})

test('bind_token 的提取与后台二维码格式一致', () => {
  expect(extractBindToken('http://127.0.0.1:5000/mp/bind?t=abc.DEF-_1')).toBe('abc.DEF-_1')
  expect(extractBindToken('https://market.example.com/mp/bind?x=1&t=ab%2Ecd')).toBe('ab.cd')
  expect(extractBindToken('/mp/bind?t=tok')).toBe('tok')
  expect(extractBindToken(encodeURIComponent('https://m.example.com/mp/bind?t=tok2'))).toBe('tok2')
  expect(extractBindToken('  rawtoken.sig  ')).toBe('rawtoken.sig')
  expect(extractBindToken('https://m.example.com/mp/bind')).toBe('')
  expect(extractBindToken('')).toBe('')
})

test('本地演示模式：手机号 code 先登记到假微信，再只把 code 发给服务器', async () => {
  const config = require('../config')
  config.FAKE_WECHAT_BASE = 'http://127.0.0.1:9100'
  try {
    global.wx = createWx(api, { fakeWechatBase: 'http://127.0.0.1:9100' })
    const page = await openBind()
    await page.instance.onGetPhoneNumber({ detail: { code: 'phone-code-1' } })
    await flush()
    expect(wx.fakeWechatCalls.map((c) => c.url)).toEqual(['http://127.0.0.1:9100/_fake/codes', 'http://127.0.0.1:9100/_fake/phones'])
    expect(wx.fakeWechatCalls[1].data).toEqual({ code: 'phone-code-1', phone: '13800000001' })
    expect(api.requests.filter((r) => r.path === '/auth/bind').map((r) => r.data)).toEqual([{ phone_code: 'phone-code-1' }])
  } finally {
    config.FAKE_WECHAT_BASE = ''
  }
})
