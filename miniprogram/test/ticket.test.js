const fs = require('fs')
const path = require('path')
const { ROOT, loadPage, renderPage, flush, $, $$, text, texts } = require('./helpers/page')
const { FakeApi, PHOTO_URL } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')

const pageId = loadPage('ticket')
const RED = 'rgb(230, 67, 64)'

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
})

async function openTicket(id) {
  const page = renderPage(pageId)
  await page.instance.onLoad({ id: String(id) })
  await flush()
  return page
}

function posts(path) {
  return api.requests.filter((r) => r.method === 'POST' && r.path === path)
}

// 模拟器的内置 image 不渲染 src：读同一地址的 data-url（页面模板里两者绑定同一个值，见下面的测试）
function srcs(page, selector) {
  return $$(page, selector).map((el) => el.getAttribute('data-url'))
}

test('页面模板里每张照片的 src 与预览用的 data-url 是同一个签名地址', () => {
  const wxml = fs.readFileSync(path.join(ROOT, 'pages/ticket/ticket.wxml'), 'utf8')
  const images = wxml.match(/<image[^>]*>/g)
  expect(images.length).toBeGreaterThanOrEqual(3)
  images.forEach((tag) => {
    const src = /\ssrc="\{\{([\w.]+)\}\}"/.exec(tag)[1]
    expect(src).toMatch(/\.url$/)
    expect(tag).toContain(`data-url="{{${src}}}"`)
  })
})

test('详情：状态、编号、类别、紧急、摊位、描述、处理人、超时红色、照片与处理进度', async () => {
  const page = await openTicket(71)
  expect(text(page, '.ticket-status')).toBe('处理中')
  expect(text(page, '.ticket-number')).toBe('JJ-T261120-0001')
  expect(text(page, '.ticket-kind')).toBe('报修')
  expect(text(page, '.ticket-urgent')).toBe('紧急')
  expect(text(page, '.ticket-title')).toBe('冷柜不制冷')
  expect(text(page, '.ticket-unit')).toBe('A-001')
  expect(text(page, '.description')).toBe('A-001 的冷柜从早上开始不制冷，蔬菜快放不住了。')
  expect(text(page, '.assignee')).toBe('王师傅')
  expect(text(page, '.ticket-created')).toBe('2026-11-20 09:00')
  expect(text(page, '.overdue-flag')).toBe('已超时，应于 2026-11-20 13:00 前处理')
  expect(getComputedStyle($(page, '.overdue-flag')).color).toBe(RED)
  expect(srcs(page, '.report-photos .photo-img')).toEqual([PHOTO_URL + 'sig-701', PHOTO_URL + 'sig-702'])

  // 进度从新到旧；提交时的照片不在进度里重复，处理照片在进度里
  expect(texts(page, '.event-action')).toEqual(['处理进展', '已指派处理人', '提交工单'])
  expect(texts(page, '.event-time')).toEqual(['2026-11-20 11:10', '2026-11-20 09:30', '2026-11-20 09:00'])
  expect(texts(page, '.event-by')).toEqual(['王师傅', '刘经理', '商户'])
  expect(texts(page, '.event-note')).toEqual(['压缩机损坏，配件明天到', '已安排王师傅'])
  expect(texts(page, '.event-status')).toEqual(['· 处理中', '· 处理中', '· 待受理'])
  expect(srcs(page, '.event-photos .photo-img')).toEqual([PHOTO_URL + 'sig-703'])

  expect(page.querySelector('.cancel-btn')).toBeTruthy()
  expect(page.querySelector('.reopen-btn')).toBeFalsy()
  expect(page.querySelector('.rate-btn')).toBeFalsy()
  expect(page.querySelector('.add-photos-btn')).toBeTruthy()
})

test('服务器以描述开头生成的标题不重复显示', async () => {
  const page = await openTicket(72)
  expect($(page, '.ticket-title')).toBeNull()
  expect(text(page, '.description')).toBe('隔壁摊位每天早上把货堆在通道上，顾客和推车都过不去，已经说过好几次了。')
  expect(text(page, '.assignee')).toBe('待安排')
})

test('点照片用 wx.previewImage 预览（签名地址）', async () => {
  const page = await openTicket(71)
  page.querySelectorAll('.photo-img')[1].dispatchEvent('tap')
  await flush()
  expect(wx.previewImage).toHaveBeenCalledWith({
    current: PHOTO_URL + 'sig-702', urls: [PHOTO_URL + 'sig-701', PHOTO_URL + 'sig-702'],
  })
})

test('取消：确认后发送取消，按回答显示已取消', async () => {
  global.wx = createWx(api, { modalInput: '  不需要了 ' })
  const page = await openTicket(72)
  page.querySelector('.cancel-btn').dispatchEvent('tap')
  await flush(10)
  expect(wx.showModal.mock.calls[0][0].title).toBe('取消工单')
  const sent = posts('/tickets/72/cancel')
  expect(sent).toHaveLength(1)
  expect(sent[0].data).toEqual({ note: '不需要了' })
  expect(text(page, '.ticket-status')).toBe('已取消')
  expect(texts(page, '.event-action')[0]).toBe('已取消')
  expect(texts(page, '.event-note')[0]).toBe('不需要了')
  expect(page.querySelector('.cancel-btn')).toBeFalsy()
  expect(page.querySelector('.add-photos-btn')).toBeFalsy()
  expect(api.tickets.find((t) => t.id === 72).status).toBe('cancelled')
  // 只读了一次详情：取消后的显示来自取消的回答
  expect(api.requests.filter((r) => r.path === '/tickets/72')).toHaveLength(1)
})

test('取消时点了“取消”：不发送请求', async () => {
  global.wx = createWx(api, { confirm: false })
  const page = await openTicket(72)
  page.querySelector('.cancel-btn').dispatchEvent('tap')
  await flush(10)
  expect(posts('/tickets/72/cancel')).toHaveLength(0)
  expect(text(page, '.ticket-status')).toBe('待受理')
})

test('未解决，重新处理：没写说明时本地拒绝；写了说明后发送并显示处理中', async () => {
  const page = await openTicket(73)
  expect(text(page, '.ticket-status')).toBe('待确认')
  expect(srcs(page, '.event-photos .photo-img')).toEqual([PHOTO_URL + 'sig-732'])
  page.querySelector('.reopen-btn').dispatchEvent('tap')
  await flush()
  page.querySelector('.note-input').dispatchEvent('input', { detail: { value: '   ' } })
  page.querySelector('.submit-reopen-btn').dispatchEvent('tap')
  await flush()
  expect(shownMessages(wx)).toEqual(['请说明哪里还没有解决'])
  expect(posts('/tickets/73/reopen')).toHaveLength(0)

  page.querySelector('.note-input').dispatchEvent('input', { detail: { value: '还是在滴水' } })
  page.querySelector('.submit-reopen-btn').dispatchEvent('tap')
  await flush(10)
  const sent = posts('/tickets/73/reopen')
  expect(sent).toHaveLength(1)
  expect(sent[0].data).toEqual({ note: '还是在滴水' })
  expect(text(page, '.ticket-status')).toBe('处理中')
  expect(texts(page, '.event-action')[0]).toBe('未解决，重新处理')
  expect(texts(page, '.event-note')[0]).toBe('还是在滴水')
  expect($(page, '.reopen-form')).toBeNull()
  expect(page.querySelector('.rate-btn')).toBeFalsy()
  expect(page.querySelector('.cancel-btn')).toBeTruthy()
})

test('评价并关闭：发送 1-5 的整数评分与评价，显示已关闭与星级', async () => {
  const page = await openTicket(73)
  page.querySelector('.rate-btn').dispatchEvent('tap')
  await flush()
  page.querySelector('.submit-rating-btn').dispatchEvent('tap')
  await flush()
  expect(shownMessages(wx)).toEqual(['请选择 1 至 5 星'])
  expect(posts('/tickets/73/rating')).toHaveLength(0)

  page.querySelector('.star-4').dispatchEvent('tap')
  page.querySelector('.comment-input').dispatchEvent('input', { detail: { value: '修得很快' } })
  await flush()
  expect($$(page, '.star-on')).toHaveLength(4)
  page.querySelector('.submit-rating-btn').dispatchEvent('tap')
  await flush(10)
  const sent = posts('/tickets/73/rating')
  expect(sent).toHaveLength(1)
  expect(sent[0].data).toEqual({ rating: 4, comment: '修得很快' })
  expect(Number.isInteger(sent[0].data.rating)).toBe(true)
  expect(text(page, '.ticket-status')).toBe('已关闭')
  expect(text(page, '.rating-stars')).toBe('★★★★☆')
  expect(text(page, '.rating-comment')).toBe('修得很快')
  expect(page.querySelector('.rate-btn')).toBeFalsy()
  expect(page.querySelector('.reopen-btn')).toBeFalsy()
  expect(api.tickets.find((t) => t.id === 73)).toMatchObject({ status: 'closed', rating: 4 })
})

test('状态已变（409 ticket_state）：显示服务器的信息并重新读取工单', async () => {
  const page = await openTicket(73)
  // 工单已被自动关闭（7 天未确认）
  Object.assign(api.tickets.find((t) => t.id === 73), { status: 'closed', closed_at: '2026-11-26T06:00:00+00:00' })
  page.querySelector('.rate-btn').dispatchEvent('tap')
  await flush()
  page.querySelector('.star-5').dispatchEvent('tap')
  page.querySelector('.submit-rating-btn').dispatchEvent('tap')
  await flush(10)
  expect(shownMessages(wx)).toContain('工单已关闭，只有已处理的工单可以评价')
  expect(api.requests.filter((r) => r.path === '/tickets/73')).toHaveLength(2)
  expect(text(page, '.ticket-status')).toBe('已关闭')
  expect(page.querySelector('.rate-btn')).toBeFalsy()
})

test('别的商户的工单（404）：显示工单不存在', async () => {
  const page = await openTicket(81)
  expect(shownMessages(wx)).toEqual(['工单不存在'])
  expect($(page, '.summary')).toBeNull()
})

test('处理中补充照片：逐张上传并重新显示；照片太大时显示服务器的信息', async () => {
  const page = await openTicket(72)
  wx.queueMedia([{ type: 'image/jpeg' }, { type: 'image/jpeg', size: 5 * 1024 * 1024 + 1 }])
  // 第二张在选图时就超过 5 MB：不加入上传
  page.querySelector('.add-photos-btn').dispatchEvent('tap')
  await flush(20)
  expect(shownMessages(wx)).toContain('照片不能超过 5 MB')
  expect(wx.uploadFile).toHaveBeenCalledTimes(1)
  expect(wx.uploadFile.mock.calls[0][0].name).toBe('file')
  expect($$(page, '.report-photos .photo-img')).toHaveLength(1)

  // 选图时报告 4 MB，服务器收到的却超过 5 MB（例如网关另有限制）：显示服务器的信息
  wx.queueMedia([{ type: 'image/png', size: 4 * 1024 * 1024, sentSize: 6 * 1024 * 1024 }])
  page.querySelector('.add-photos-btn').dispatchEvent('tap')
  await flush(20)
  expect(wx.chooseMedia.mock.calls[1][0].count).toBe(8)
  expect(shownMessages(wx).pop()).toBe('有照片未能上传（第 1 张：照片不能超过 5 MB）')
  expect($$(page, '.report-photos .photo-img')).toHaveLength(1)
})

test('工单关闭后没有补充照片、取消等按钮', async () => {
  const page = await openTicket(74)
  expect(text(page, '.ticket-status')).toBe('已关闭')
  expect(texts(page, '.event-note')).toEqual(['已在东侧增设 20 个车位'])
  for (const sel of ['.add-photos-btn', '.cancel-btn', '.reopen-btn', '.rate-btn']) {
    expect(page.querySelector(sel)).toBeFalsy()
  }
})

test('照片地址过期（加载失败）：重新读取工单换新地址，一分钟内只读一次', async () => {
  const page = await openTicket(71)
  const reads = () => api.requests.filter((r) => r.method === 'GET' && r.path === '/tickets/71').length
  expect(reads()).toBe(1)
  await page.instance.onPhotoError()
  await flush()
  expect(reads()).toBe(2)
  await page.instance.onPhotoError()
  await flush()
  expect(reads()).toBe(2)
  const wxml = fs.readFileSync(path.join(ROOT, 'pages/ticket/ticket.wxml'), 'utf8')
  wxml.match(/<image[^>]*>/g).forEach((tag) => expect(tag).toContain('binderror="onPhotoError"'))
})
