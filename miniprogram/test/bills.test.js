const { loadPage, renderPage, flush, $, $$, text, texts, hasClass } = require('./helpers/page')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')
const config = require('../config')

const pageId = loadPage('bills')
const RED = 'rgb(230, 67, 64)'

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
  config.PAY_POLL_INTERVAL_MS = 0
})

async function openBills() {
  const page = renderPage(pageId)
  await page.instance.onShow()
  await flush()
  return page
}

function itemOf(page, number) {
  return $$(page, '.bill-item').find((el) => el.textContent.includes(number))
}

test('逾期账单显示为红色并带滞纳金，金额格式正确', async () => {
  const page = await openBills()
  const overdue = itemOf(page, 'JJ-202610-000041')
  expect(hasClass(overdue, 'overdue')).toBe(true)
  expect(text(overdue, '.bill-late-fee')).toBe('含滞纳金 ¥1.20')
  expect(text(overdue, '.bill-outstanding')).toBe('待缴 ¥771.20')
  expect(text(overdue, '.bill-amount')).toBe('账单金额 ¥770.00')
  expect(text(overdue, '.bill-status')).toBe('逾期')
  expect(text(overdue, '.bill-due')).toBe('缴费截止 2026-11-15')
  expect(text(overdue, '.bill-period')).toContain('2026年10月')
  for (const sel of ['.bill-late-fee', '.bill-outstanding', '.bill-status', '.bill-due']) {
    expect(getComputedStyle($(overdue, sel)).color).toBe(RED)
  }

  const normal = itemOf(page, 'JJ-202611-000042')
  expect(hasClass(normal, 'overdue')).toBe(false)
  expect($(normal, '.bill-late-fee')).toBeNull()
  expect(getComputedStyle($(normal, '.bill-outstanding')).color).not.toBe(RED)
  expect(text(normal, '.bill-outstanding')).toBe('待缴 ¥12,345.67')
  expect(text(itemOf(page, 'JJ-202612-000043'), '.bill-outstanding')).toBe('待缴 ¥0.01')
})

test('每笔账单写明所属摊位（一户多摊位时分得清）', async () => {
  api.bills.find((b) => b.number === 'JJ-202611-000042').unit_codes = ['B-003', 'B-004']
  const page = await openBills()
  expect(text(itemOf(page, 'JJ-202611-000042'), '.bill-units')).toBe('摊位 B-003、B-004')
  expect(text(itemOf(page, 'JJ-202610-000041'), '.bill-units')).toBe('摊位 A-001')
})

test('标签切换按状态查询：未缴、逾期、已缴', async () => {
  const page = await openBills()
  expect(texts(page, '.bill-number')).toEqual(['JJ-202612-000043', 'JJ-202611-000042', 'JJ-202610-000041'])
  page.querySelector('.tab-overdue').dispatchEvent('tap')
  await flush()
  expect(texts(page, '.bill-number')).toEqual(['JJ-202610-000041'])
  page.querySelector('.tab-paid').dispatchEvent('tap')
  await flush()
  expect(texts(page, '.bill-number')).toEqual(['JJ-202609-000040'])
  expect(text(page, '.bill-amount')).toBe('账单金额 ¥0.00')
  expect($(page, '.pay-bar')).toBeNull()
  const statuses = api.requests.filter((r) => r.path === '/bills').map((r) => r.query.status)
  expect(statuses).toEqual(['unpaid', 'overdue', 'paid'])
})

test('滚动到底部时加载下一页，直到全部加载', async () => {
  config.PAGE_SIZE = 2
  try {
    const page = await openBills()
    expect($$(page, '.bill-item')).toHaveLength(2)
    await page.instance.onReachBottom()
    await flush()
    expect(texts(page, '.bill-number')).toEqual(['JJ-202612-000043', 'JJ-202611-000042', 'JJ-202610-000041'])
    expect(text(page, '.no-more')).toBe('没有更多了')
    await page.instance.onReachBottom()
    await flush()
    const pages = api.requests.filter((r) => r.path === '/bills').map((r) => [r.query.page, r.query.page_size])
    expect(pages).toEqual([['1', '2'], ['2', '2']])
  } finally {
    config.PAGE_SIZE = 20
  }
})

test('勾选未缴账单一键缴费：按返回的 pay_params 调起支付，确认后显示已缴', async () => {
  api.confirmAfterPolls = 2 // 第一次查询时微信支付通知尚未到达
  const page = await openBills()
  page.querySelectorAll('.bill-check')
    .filter((el) => ['41', '43'].includes(el.dom.getAttribute('data-id')))
    .forEach((el) => el.dispatchEvent('tap'))
  await flush()
  expect(text(page, '.pay-summary')).toBe('已选 2 笔，合计 ¥771.21')

  await page.instance.onPaySelected()
  await flush()

  const pay = api.requests.find((r) => r.path === '/payments')
  expect(pay.method).toBe('POST')
  expect(pay.data).toEqual({ bill_ids: [43, 41] })
  const order = api.orders[0]
  expect(wx.requestPayment).toHaveBeenCalledTimes(1)
  const sent = wx.requestPayment.mock.calls[0][0]
  const sentValues = Object.fromEntries(Object.entries(sent).filter(([, v]) => typeof v !== 'function'))
  expect(sentValues).toEqual(order.pay_params)
  expect(wx.showLoading.mock.calls.map((c) => c[0].title)).toContain('支付结果确认中')
  expect(shownMessages(wx)).toContain('缴费成功')
  // 刷新后两张账单都不再是未缴
  expect(texts(page, '.bill-number')).toEqual(['JJ-202611-000042'])
  page.querySelector('.tab-paid').dispatchEvent('tap')
  await flush()
  expect(texts(page, '.bill-number')).toEqual(expect.arrayContaining(['JJ-202610-000041', 'JJ-202612-000043']))
})

test('取消支付：提示已取消，账单与列表不变', async () => {
  global.wx = createWx(api, { payOutcome: () => 'requestPayment:fail cancel' })
  const page = await openBills()
  page.querySelector('.select-all').dispatchEvent('tap')
  await flush()
  expect(text(page, '.pay-summary')).toBe('已选 3 笔，合计 ¥13,116.88')
  const before = api.requests.length
  await page.instance.onPaySelected()
  await flush()
  expect(shownMessages(wx)).toContain('已取消')
  expect(shownMessages(wx)).not.toContain('缴费成功')
  // 取消后不再查询账单，也不刷新列表
  expect(api.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /payments'])
  expect(texts(page, '.bill-number')).toHaveLength(3)
  expect(text(page, '.pay-summary')).toBe('已选 3 笔，合计 ¥13,116.88')
  expect(api.bills.filter((b) => b.status === 'paid')).toHaveLength(1)
})

test('上一笔支付刚完成（409 payment_in_progress）：提示并刷新账单', async () => {
  const page = await openBills()
  page.querySelector('.bill-check').dispatchEvent('tap')
  await flush()
  api.override('POST /payments', { statusCode: 409, data: { error: { code: 'payment_in_progress', message: '该账单的上一笔支付刚刚完成，请稍后刷新账单' } } })
  const listed = api.requests.filter((r) => r.path === '/bills').length
  await page.instance.onPaySelected()
  await flush()
  expect(wx.requestPayment).not.toHaveBeenCalled()
  expect(shownMessages(wx)).toContain('该账单的上一笔支付刚刚完成，请稍后刷新账单')
  expect(api.requests.filter((r) => r.path === '/bills').length).toBe(listed + 1)
})
