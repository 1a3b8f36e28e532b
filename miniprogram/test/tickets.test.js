const { loadPage, renderPage, flush, $, $$, text, texts, hasClass } = require('./helpers/page')
const { FakeApi } = require('./helpers/fakeApi')
const { createWx } = require('./helpers/wx')
const config = require('../config')

const pageId = loadPage('tickets')
const RED = 'rgb(230, 67, 64)'

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
})

async function openTickets() {
  const page = renderPage(pageId)
  await page.instance.onShow()
  await flush()
  return page
}

function itemOf(page, number) {
  return $$(page, '.ticket-item').find((el) => el.textContent.includes(number))
}

test('处理中：超时工单红色显示，紧急标记、类别、标题或描述开头、北京时间、照片数', async () => {
  const page = await openTickets()
  expect(texts(page, '.ticket-number').map((t) => t.split(' ')[0])).toEqual(['JJ-T261121-0002', 'JJ-T261120-0001'])

  const overdue = itemOf(page, 'JJ-T261120-0001')
  expect(hasClass(overdue, 'overdue')).toBe(true)
  expect(text(overdue, '.ticket-kind')).toBe('报修')
  expect(text(overdue, '.ticket-urgent')).toBe('紧急')
  expect(text(overdue, '.ticket-title')).toBe('冷柜不制冷')
  expect(text(overdue, '.ticket-status')).toBe('处理中')
  expect(text(overdue, '.ticket-unit')).toBe('· 摊位 A-001')
  expect(text(overdue, '.ticket-created')).toBe('提交于 2026-11-20 09:00') // UTC 01:00 = 北京时间 09:00
  expect(text(overdue, '.ticket-photos')).toBe('3 张照片')
  expect(text(overdue, '.ticket-overdue')).toBe('已超时（应于 2026-11-20 13:00 前处理）')
  expect(getComputedStyle($(overdue, '.ticket-overdue')).color).toBe(RED)
  expect(getComputedStyle($(overdue, '.ticket-status')).color).toBe(RED)

  const normal = itemOf(page, 'JJ-T261121-0002')
  expect(hasClass(normal, 'overdue')).toBe(false)
  expect($(normal, '.ticket-overdue')).toBeNull()
  expect(getComputedStyle($(normal, '.ticket-status')).color).not.toBe(RED)
  expect($(normal, '.ticket-urgent')).toBeNull()
  expect($(normal, '.ticket-photos')).toBeNull()
  expect(text(normal, '.ticket-kind')).toBe('投诉')
  expect(text(normal, '.ticket-status')).toBe('待受理')
  // 没填标题的工单：服务器以描述的开头作标题
  expect(text(normal, '.ticket-title')).toBe('隔壁摊位每天早上把货堆在通道上，顾客和推车都过不去，已经说')
})

test('标签按状态查询：处理中、待确认、已关闭（含已取消）', async () => {
  const page = await openTickets()
  page.querySelector('.tab-resolved').dispatchEvent('tap')
  await flush()
  expect(texts(page, '.ticket-title')).toEqual(['水龙头漏水'])
  expect(text(page, '.ticket-status')).toBe('待确认')
  page.querySelector('.tab-closed').dispatchEvent('tap')
  await flush()
  expect(texts(page, '.ticket-title')).toEqual(['增加停车位', '灯不亮'])
  expect(texts(page, '.ticket-status')).toEqual(['已关闭', '已取消'])
  expect(texts(page, '.ticket-kind')).toEqual(['建议', '报修'])
  const statuses = api.requests.filter((r) => r.path === '/tickets').map((r) => r.query.status)
  expect(statuses).toEqual(['open', 'resolved', 'closed'])
})

test('滚动到底部时加载下一页；别的商户的工单不出现', async () => {
  config.PAGE_SIZE = 1
  try {
    const page = await openTickets()
    expect($$(page, '.ticket-item')).toHaveLength(1)
    await page.instance.onReachBottom()
    await flush()
    expect($$(page, '.ticket-item')).toHaveLength(2)
    expect(text(page, '.no-more')).toBe('没有更多了')
    await page.instance.onReachBottom()
    await flush()
    const pages = api.requests.filter((r) => r.path === '/tickets').map((r) => [r.query.page, r.query.page_size])
    expect(pages).toEqual([['1', '1'], ['2', '1']])
    expect(page.dom.textContent).not.toContain('JJ-T261122-0006')
  } finally {
    config.PAGE_SIZE = 20
  }
})

test('点工单打开详情，新建按钮打开新建页', async () => {
  const page = await openTickets()
  page.querySelectorAll('.ticket-item')[1].dispatchEvent('tap')
  page.querySelector('.new-btn').dispatchEvent('tap')
  await flush()
  expect(wx.navigateTo.mock.calls.map((c) => c[0].url)).toEqual(['/pages/ticket/ticket?id=71', '/pages/ticket-new/ticket-new'])
})

test('没有工单时显示暂无工单', async () => {
  api.tickets = api.tickets.filter((t) => t.merchant_id !== 12)
  const page = await openTickets()
  expect(text(page, '.empty')).toBe('暂无工单')
})

test('app.json 登记了工单的三个页面，底部标签栏有“报修”', () => {
  const fs = require('fs')
  const path = require('path')
  const { ROOT } = require('./helpers/page')
  const app = JSON.parse(fs.readFileSync(path.join(ROOT, 'app.json'), 'utf8'))
  for (const name of ['tickets', 'ticket-new', 'ticket']) {
    expect(app.pages).toContain(`pages/${name}/${name}`)
    for (const ext of ['js', 'json', 'wxml', 'wxss']) {
      expect(fs.existsSync(path.join(ROOT, 'pages', name, `${name}.${ext}`))).toBe(true)
    }
  }
  expect(app.tabBar.list.map((t) => [t.pagePath, t.text])).toEqual([
    ['pages/bills/bills', '账单'], ['pages/tickets/tickets', '报修'], ['pages/me/me', '我的'],
  ])
})
