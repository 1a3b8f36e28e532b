const { loadPage, renderPage, flush, $, $$, text, texts } = require('./helpers/page')
const { FakeApi, BASE } = require('./helpers/fakeApi')
const { createWx, shownMessages } = require('./helpers/wx')

const pageId = loadPage('ticket-new')
const MB = 1024 * 1024

let api
beforeEach(() => {
  api = new FakeApi()
  global.wx = createWx(api)
})

async function openNew(options = {}) {
  const page = renderPage(pageId)
  await page.instance.onLoad(options)
  await flush()
  return page
}

function typeDescription(page, value) {
  page.querySelector('.description-input').dispatchEvent('input', { detail: { value } })
}

async function pickPhotos(page, list) {
  wx.queueMedia(list)
  page.querySelector('.photo-add').dispatchEvent('tap')
  await flush()
}

async function submit(page) {
  page.querySelector('.submit-btn').dispatchEvent('tap')
  await flush(20)
}

test('提交报修：先发 JSON，再每张照片一次 wx.uploadFile（字段 file、Bearer 令牌、商户），显示进度后打开工单', async () => {
  const page = await openNew()
  expect(texts(page, '.kind-option')).toEqual(['报修', '投诉', '建议'])
  page.querySelector('.urgent-switch').dispatchEvent('change', { detail: { value: true } })
  page.querySelector('.unit-picker').dispatchEvent('change', { detail: { value: '1' } })
  page.querySelector('.title-input').dispatchEvent('input', { detail: { value: '冷柜不制冷' } })
  typeDescription(page, '  冷柜从早上开始不制冷  ')
  await flush()
  expect(text(page, '.unit-choice')).toBe('A-001（A区·蔬菜） ›')
  expect(text(page, '.counter')).toBe('14/1000')
  await pickPhotos(page, [{ type: 'image/jpeg' }, { type: 'image/png' }, { type: 'image/jpeg' }])
  expect($$(page, '.photo-img')).toHaveLength(3)
  expect(text(page, '.photo-count')).toBe('已选 3/9 张')

  const choose = wx.chooseMedia.mock.calls[0][0]
  expect(choose.count).toBe(9)
  expect(choose.mediaType).toEqual(['image'])
  expect(choose.sizeType).toEqual(['compressed'])

  await submit(page)

  const created = api.requests.filter((r) => r.method === 'POST' && r.path === '/tickets')
  expect(created).toHaveLength(1)
  expect(created[0].header['Content-Type']).toBe('application/json')
  expect(created[0].data).toEqual({ kind: 'repair', urgency: 'urgent', unit_id: 3, title: '冷柜不制冷', description: '冷柜从早上开始不制冷' })
  const ticket = api.tickets.find((t) => t.number === 'JJ-T261123-0091')
  expect(ticket.urgency).toBe('urgent')

  expect(wx.uploadFile).toHaveBeenCalledTimes(3)
  const token = wx.storage.ms_token
  wx.uploadFile.mock.calls.forEach(([req], i) => {
    expect(req.url).toBe(`${BASE}/tickets/${ticket.id}/photos`)
    expect(req.name).toBe('file')
    expect(req.header.Authorization).toBe('Bearer ' + token)
    expect(req.header['X-Merchant-Id']).toBe('12')
    expect(req.header['Content-Type']).toBeUndefined() // multipart 由 wx.uploadFile 自己设置
    expect(req.filePath).toBe(page.instance.data.photos[i].path)
  })
  // 三张照片都存进了工单，且是请求里真正发出的文件
  expect(ticket.photos.map((p) => p.file.path)).toEqual(page.instance.data.photos.map((p) => p.path))
  expect(ticket.photos.map((p) => p.file.type)).toEqual(['image/jpeg', 'image/png', 'image/jpeg'])
  expect(api.requests.filter((r) => r.path.endsWith('/photos')).every((r) => r.multipart)).toBe(true)

  expect(wx.showLoading.mock.calls.map((c) => c[0].title)).toEqual(['第 1/3 张', '第 2/3 张', '第 3/3 张'])
  expect(wx.hideLoading).toHaveBeenCalled()
  expect(wx.redirectTo).toHaveBeenCalledWith({ url: `/pages/ticket/ticket?id=${ticket.id}` })
  expect(shownMessages(wx)).toEqual(['已提交'])
})

test('照片太大（413）：显示服务器的信息，其余照片照传，仍打开工单页', async () => {
  const page = await openNew()
  typeDescription(page, '水管破裂')
  // 第二张选图时报告 4 MB，服务器收到的却超过 5 MB（例如网关另有限制），以 413 拒绝
  await pickPhotos(page, [{ type: 'image/jpeg' }, { type: 'image/jpeg', size: 4 * MB, sentSize: 6 * MB }, { type: 'image/png' }])
  await submit(page)

  const ticket = api.tickets.find((t) => t.number === 'JJ-T261123-0091')
  expect(ticket).toBeTruthy()
  expect(wx.uploadFile).toHaveBeenCalledTimes(3)
  expect(ticket.photos).toHaveLength(2)
  const messages = shownMessages(wx)
  expect(messages).toHaveLength(1)
  expect(messages[0]).toContain('照片不能超过 5 MB')
  expect(messages[0]).toContain('第 2 张')
  expect(messages[0]).toContain(ticket.number)
  expect(wx.redirectTo).toHaveBeenCalledWith({ url: `/pages/ticket/ticket?id=${ticket.id}` })
})

test('照片格式不对（415）：显示服务器的信息，工单保留', async () => {
  const page = await openNew({ kind: 'suggestion' })
  typeDescription(page, '希望增加夜间照明')
  await pickPhotos(page, [{ type: 'image/heic' }])
  await submit(page)
  const ticket = api.tickets.find((t) => t.number === 'JJ-T261123-0091')
  expect(ticket.kind).toBe('suggestion')
  expect(ticket.photos).toHaveLength(0)
  expect(shownMessages(wx)[0]).toContain('只能上传 JPG 或 PNG 格式的照片')
  expect(wx.redirectTo).toHaveBeenCalledWith({ url: `/pages/ticket/ticket?id=${ticket.id}` })
})

test('上传时令牌过期：重新登录一次后重传这张照片', async () => {
  const page = await openNew()
  typeDescription(page, '门锁坏了')
  await pickPhotos(page, [{ type: 'image/jpeg' }])
  api.override('POST /tickets', (req) => {
    req.merchantId = 12 // 覆盖的回答跳过了令牌检查：这里就是当前商户
    const res = api.createTicket(req)
    api.expireTokens()
    return res
  })
  await submit(page)
  const ticket = api.tickets.find((t) => t.number === 'JJ-T261123-0091')
  expect(wx.uploadFile).toHaveBeenCalledTimes(2)
  const [first, retry] = wx.uploadFile.mock.calls.map((c) => c[0])
  expect(first.header.Authorization).not.toBe(retry.header.Authorization)
  expect(retry.header.Authorization).toBe('Bearer ' + wx.storage.ms_token)
  expect(ticket.photos).toHaveLength(1)
  expect(shownMessages(wx)).toEqual(['已提交'])
})

test('描述必填、显示字数；选的照片可删除，最多 9 张', async () => {
  const page = await openNew()
  await submit(page)
  expect(shownMessages(wx)).toEqual(['请填写问题描述'])
  expect(api.requests.filter((r) => r.path === '/tickets')).toHaveLength(0)

  await pickPhotos(page, Array.from({ length: 7 }, () => ({ type: 'image/jpeg' })))
  await pickPhotos(page, Array.from({ length: 5 }, () => ({ type: 'image/jpeg' })))
  expect(wx.chooseMedia.mock.calls[1][0].count).toBe(2)
  expect($$(page, '.photo-img')).toHaveLength(9)
  expect($(page, '.photo-add')).toBeNull()
  const third = page.instance.data.photos[2].path
  page.querySelectorAll('.photo-remove')[2].dispatchEvent('tap')
  await flush()
  expect($$(page, '.photo-img')).toHaveLength(8)
  expect(page.instance.data.photos.map((p) => p.path)).not.toContain(third)
  expect($(page, '.photo-add')).toBeTruthy()

  const long = '漏'.repeat(1001)
  typeDescription(page, long)
  await flush()
  expect(text(page, '.counter')).toBe('1001/1000')
  await submit(page)
  expect(shownMessages(wx)).toContain('描述不能超过 1000 字')
  expect(api.requests.filter((r) => r.path === '/tickets')).toHaveLength(0)
})

test('投诉与建议没有紧急开关，也不发送 urgency；不选摊位就不发送 unit_id', async () => {
  const page = await openNew()
  page.querySelector('.urgent-switch').dispatchEvent('change', { detail: { value: true } })
  page.querySelector('.kind-complaint').dispatchEvent('tap')
  typeDescription(page, '秤不准')
  await flush()
  expect($(page, '.urgent-switch')).toBeNull()
  await submit(page)
  const created = api.requests.find((r) => r.method === 'POST' && r.path === '/tickets')
  expect(created.data).toEqual({ kind: 'complaint', description: '秤不准' })
  expect(wx.uploadFile).not.toHaveBeenCalled()
})

test('服务器拒绝（422 unit_not_own 摊位不是自己的）：显示信息，留在本页，不上传照片', async () => {
  const page = await openNew()
  page.setData({ units: [{ id: 9, code: 'B-001' }], unitIndex: 1 })
  typeDescription(page, '地面破损')
  await pickPhotos(page, [{ type: 'image/jpeg' }])
  await submit(page)
  expect(shownMessages(wx)).toEqual(['所选摊位不属于本商户'])
  expect(wx.uploadFile).not.toHaveBeenCalled()
  expect(wx.redirectTo).not.toHaveBeenCalled()
  expect(page.instance.data.submitting).toBe(false)
})

test('从账单进入：类别为投诉，描述写明账单编号', async () => {
  const page = await openNew({ kind: 'complaint', bill: encodeURIComponent('JJ-202610-000041') })
  expect(page.instance.data.kind).toBe('complaint')
  expect(page.instance.data.description).toBe('关于账单 JJ-202610-000041：')
})

test('提交时先请求工单进度的订阅消息授权，再提交工单', async () => {
  const page = await openNew()
  typeDescription(page, '门口的下水道堵了')
  await flush()
  await submit(page)
  expect(wx.requestSubscribeMessage).toHaveBeenCalledTimes(1)
  expect(wx.requestSubscribeMessage.mock.calls[0][0].tmplIds).toEqual(['TPL-ticket-progress'])
  const asked = wx.requestSubscribeMessage.mock.invocationCallOrder[0]
  const postIndex = wx.request.mock.calls.findIndex(([req]) => req.method === 'POST' && /\/tickets$/.test(req.url))
  expect(postIndex).toBeGreaterThanOrEqual(0)
  expect(wx.request.mock.invocationCallOrder[postIndex]).toBeGreaterThan(asked)
})

test('用户拒绝订阅消息：工单照常提交；服务器没配置模板时不请求授权', async () => {
  wx.subscribeAnswer = 'reject'
  let page = await openNew()
  typeDescription(page, '灯坏了')
  await flush()
  await submit(page)
  expect(api.requests.filter((r) => r.method === 'POST' && r.path === '/tickets')).toHaveLength(1)

  api.subscribeTemplates = {}
  wx.requestSubscribeMessage.mockClear()
  page = await openNew()
  typeDescription(page, '水管漏水')
  await flush()
  await submit(page)
  expect(wx.requestSubscribeMessage).not.toHaveBeenCalled()
  expect(api.requests.filter((r) => r.method === 'POST' && r.path === '/tickets')).toHaveLength(2)
})
