const { loadPage, renderPage, flush, $, text, texts, hasClass } = require('./helpers/page')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')
const config = require('../config')

const pageId = loadPage('bill')
const RED = 'rgb(230, 67, 64)'

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
  config.PAY_POLL_INTERVAL_MS = 0
})

async function openBill(id) {
  const page = renderPage(pageId)
  await page.instance.onLoad({ id: String(id) })
  await flush()
  return page
}

test('逾期账单详情：红色逾期标记、滞纳金、截止日、明细', async () => {
  const page = await openBill(41)
  const summary = $(page, '.summary')
  expect(hasClass(summary, 'overdue')).toBe(true)
  expect(text(page, '.overdue-flag')).toContain('已逾期')
  expect(getComputedStyle($(page, '.overdue-flag')).color).toBe(RED)
  expect(text(page, '.bill-late-fee')).toBe('¥1.20')
  expect(getComputedStyle($(page, '.bill-late-fee')).color).toBe(RED)
  expect(text(page, '.bill-outstanding')).toBe('¥771.20')
  expect(text(page, '.bill-amount')).toBe('¥770.00')
  expect(text(page, '.bill-due')).toBe('2026-11-15')
  expect(texts(page, '.line-desc')).toEqual(['摊位租金'])
  expect(texts(page, '.line-amount')).toEqual(['¥770.00'])
  expect(text(page, '.line-sub')).toContain('1月')
  expect(page.querySelector('.pay-btn')).toBeTruthy()
  expect(page.querySelector('.receipt-btn')).toBeFalsy()
})

test('未逾期账单不显示逾期标记', async () => {
  const page = await openBill(42)
  expect(hasClass($(page, '.summary'), 'overdue')).toBe(false)
  expect($(page, '.overdue-flag')).toBeNull()
  expect(getComputedStyle($(page, '.bill-outstanding')).color).not.toBe(RED)
  expect(text(page, '.bill-outstanding')).toBe('¥12,345.67')
})

test('缴费：支付成功后查询到已缴，页面显示已缴与下载收据', async () => {
  api.confirmAfterPolls = 3
  const page = await openBill(41)
  await page.instance.onPay()
  await flush()
  const sent = wx.requestPayment.mock.calls[0][0]
  expect({ timeStamp: sent.timeStamp, nonceStr: sent.nonceStr, package: sent.package, signType: sent.signType, paySign: sent.paySign })
    .toEqual(api.orders[0].pay_params)
  expect(api.requests.find((r) => r.path === '/payments').data).toEqual({ bill_ids: [41] })
  expect(wx.showLoading.mock.calls.map((c) => c[0].title)).toContain('支付结果确认中')
  // 查询订单三次才确认（服务器收到微信支付通知或查单后），之后重新读取账单
  const no = api.orders[0].out_trade_no
  expect(api.requests.filter((r) => r.path === '/payments/' + no)).toHaveLength(3)
  expect(api.requests.filter((r) => r.path === '/bills/41')).toHaveLength(2)
  expect(shownMessages(wx)).toContain('缴费成功')
  expect(text(page, '.bill-status')).toBe('已缴')
  expect(page.querySelector('.pay-btn')).toBeFalsy()
  expect(page.querySelector('.receipt-btn')).toBeTruthy()
})

test('支付后迟迟未确认：告知支付结果确认中，不显示成功', async () => {
  api.confirmAfterPolls = 100
  const page = await openBill(42)
  await page.instance.onPay()
  await flush()
  expect(api.requests.filter((r) => r.path === '/payments/' + api.orders[0].out_trade_no)).toHaveLength(config.PAY_POLL_TIMES)
  expect(wx.showModal.mock.calls.map((c) => c[0].title)).toContain('支付结果确认中')
  expect(shownMessages(wx)).not.toContain('缴费成功')
})

test('取消支付：提示已取消，不再查询', async () => {
  global.wx = createWx(api, { payOutcome: () => 'requestPayment:fail cancel' })
  const page = await openBill(41)
  await page.instance.onPay()
  await flush()
  expect(shownMessages(wx)).toEqual(['已取消'])
  expect(api.requests.filter((r) => r.path === '/bills/41')).toHaveLength(1)
  expect(text(page, '.bill-status')).toBe('逾期')
  expect(page.querySelector('.pay-btn')).toBeTruthy()
})

test('下载收据：带令牌下载 PDF 并用 wx.openDocument 打开', async () => {
  const page = await openBill(40)
  expect(text(page, '.receipt-no')).toBe('SJ-2026-000040')
  expect(texts(page, '.payment-method')).toEqual(['微信支付'])
  expect(texts(page, '.payment-time')).toEqual(['2026-10-10 10:03'])
  page.querySelector('.receipt-btn').dispatchEvent('tap')
  await flush()
  const download = wx.downloadFile.mock.calls[0][0]
  expect(download.url).toBe('http://127.0.0.1:5000/api/mp/v1/bills/40/receipt')
  expect(download.header.Authorization).toBe('Bearer ' + wx.storage.ms_token)
  expect(download.header['X-Merchant-Id']).toBe('12')
  const open = wx.openDocument.mock.calls[0][0]
  expect(open.fileType).toBe('pdf')
  expect(open.filePath).toBe('http://usr/receipt-40.pdf')
  expect(wx.files[open.filePath]).toBe('%PDF-1.4 receipt')
})

test('收据暂不可用：显示服务器的中文原因', async () => {
  const page = await openBill(40)
  api.override('GET /bills/40/receipt', { statusCode: 503, data: { error: { code: 'pdf_unavailable', message: '收据暂时无法生成，请稍后再试' } } })
  await page.instance.onDownloadReceipt()
  await flush()
  expect(shownMessages(wx)).toContain('收据暂时无法生成，请稍后再试')
  expect(wx.openDocument).not.toHaveBeenCalled()
})

test('别人的账单（404）：显示账单不存在', async () => {
  await openBill(51)
  expect(shownMessages(wx)).toEqual(['账单不存在'])
})

test('对账单有疑问：打开新建投诉，带上账单编号', async () => {
  const page = await openBill(41)
  page.querySelector('.question-link').dispatchEvent('tap')
  await flush()
  expect(wx.navigateTo).toHaveBeenCalledWith({ url: '/pages/ticket-new/ticket-new?kind=complaint&bill=JJ-202610-000041' })
})
