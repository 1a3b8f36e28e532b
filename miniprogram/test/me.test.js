const { loadPage, renderPage, flush, text, texts, $$ } = require('./helpers/page')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')
const session = require('../utils/session')

const pageId = loadPage('me')

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
})

async function openMe() {
  const page = renderPage(pageId)
  await page.instance.onShow()
  await flush()
  return page
}

test('显示商户名称、摊位与联系方式', async () => {
  const page = await openMe()
  expect(text(page, '.merchant-name')).toBe('张记蔬菜')
  expect(text(page, '.contact-name')).toBe('张伟')
  expect(text(page, '.contact-phone')).toBe('13800000001')
  expect(texts(page, '.unit-code')).toEqual(['A-001'])
  expect(text(page, '.unit-info')).toContain('12㎡')
  expect($$(page, '.merchant-switcher')).toHaveLength(0) // 只绑定了一个商户
})

test('通知开关以 JSON 布尔值提交', async () => {
  const page = await openMe()
  const sms = page.querySelectorAll('.notify-switch').find((el) => el.dom.getAttribute('data-key') === 'notify_sms')
  sms.dispatchEvent('change', { detail: { value: false } })
  await flush()
  const patch = api.requests.filter((r) => r.method === 'PATCH' && r.path === '/me')
  expect(patch).toHaveLength(1)
  expect(patch[0].data).toEqual({ notify_sms: false })
  expect(typeof patch[0].data.notify_sms).toBe('boolean')
  expect(patch[0].header['Content-Type']).toBe('application/json')
  expect(api.merchants[12].notify_sms).toBe(false)
  expect(page.instance.data.notify.notify_sms).toBe(false)
  expect(shownMessages(wx)).toContain('已保存')
})

test('店员不能修改通知设置：服务器拒绝时恢复开关', async () => {
  api.bindings['o-owner'] = [{ merchant_id: 12, role: 'assistant', bound_via: 'qr' }]
  const page = await openMe()
  expect(text(page, '.merchant-code')).toContain('店员')
  await page.instance.onNotifyChange({ currentTarget: { dataset: { key: 'notify_bill' } }, detail: { value: false } })
  await flush()
  expect(shownMessages(wx)).toContain('仅店主可修改商户资料')
  expect(page.instance.data.notify.notify_bill).toBe(true)
  expect(api.merchants[12].notify_bill).toBe(true)
})

test('绑定多个商户时可切换，之后的请求带 X-Merchant-Id', async () => {
  api.bindings['o-owner'].push({ merchant_id: 15, role: 'assistant', bound_via: 'qr' })
  const page = await openMe()
  expect(texts(page, '.merchant-item')).toEqual(['张记蔬菜（店主）当前', '李家水产（店员）'])
  const other = page.querySelectorAll('.merchant-item').find((el) => el.dom.getAttribute('data-id') === '15')
  other.dispatchEvent('tap')
  await flush()
  expect(session.getMerchantId()).toBe(15)
  const last = api.requests.filter((r) => r.path === '/me').pop()
  expect(last.header['X-Merchant-Id']).toBe('15')
  expect(text(page, '.merchant-name')).toBe('李家水产')
  expect(shownMessages(wx)).toContain('已切换到李家水产')
  // 账单也按所选商户查询
  const api2 = require('../utils/api')
  const bills = await api2.get('/bills')
  expect(bills.items.map((b) => b.number)).toEqual(['JJ-202611-000051'])
  expect(api.requests.filter((r) => r.path === '/bills').pop().header['X-Merchant-Id']).toBe('15')
})

test('退出登录：确认后注销令牌并回到登录页', async () => {
  const page = await openMe()
  const token = wx.storage.ms_token
  page.querySelector('.logout-btn').dispatchEvent('tap')
  await flush(10)
  expect(api.requests.filter((r) => r.path === '/auth/logout')).toHaveLength(1)
  expect(api.tokens[token]).toBeUndefined()
  expect(wx.storage.ms_token).toBeUndefined()
  expect(wx.reLaunch).toHaveBeenCalledWith({ url: '/pages/bind/bind?logout=1' })
})

test('取消退出：什么都不做', async () => {
  global.wx = createWx(api, { confirm: false })
  const page = await openMe()
  await page.instance.onLogout()
  await flush()
  expect(api.requests.filter((r) => r.path === '/auth/logout')).toHaveLength(0)
  expect(wx.storage.ms_token).toBeTruthy()
})
