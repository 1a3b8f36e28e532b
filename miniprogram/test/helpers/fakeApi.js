// 测试用的商户小程序 API：按真实 API 的路径、状态码、字段与错误信封作答（见 docs/api.md）。
const BASE = 'http://127.0.0.1:5000/api/mp/v1'

function error(statusCode, code, message, details) {
  const body = { error: { code, message } }
  if (details) body.error.details = details
  return { statusCode, data: body }
}

function bill(fields) {
  return Object.assign({
    kind: 'regular',
    status: 'issued',
    issue_date: '2026-11-01',
    late_fee_fen: 0,
    paid_fen: 0,
    is_overdue: false,
  }, fields, {
    outstanding_fen: fields.amount_fen + (fields.late_fee_fen || 0) - (fields.paid_fen || 0),
  })
}

const MERCHANTS = {
  12: {
    id: 12, code: 'M00012', name: '张记蔬菜', contact_name: '张伟', phone: '13800000001', phone2: null,
    credit_code: null, zone: { id: 1, code: 'A', name: 'A区·蔬菜' },
    notify_wechat: true, notify_sms: true, notify_bill: true, notify_overdue: true, notify_ticket: true,
  },
  15: {
    id: 15, code: 'M00015', name: '李家水产', contact_name: '李娜', phone: '13900000002', phone2: null,
    credit_code: null, zone: { id: 2, code: 'B', name: 'B区·水产' },
    notify_wechat: true, notify_sms: false, notify_bill: true, notify_overdue: true, notify_ticket: false,
  },
}

function defaultBills() {
  return [
    bill({ id: 41, merchant_id: 12, number: 'JJ-202610-000041', period: '2026-10', due_date: '2026-11-15',
      amount_fen: 77000, late_fee_fen: 120, is_overdue: true }),
    bill({ id: 42, merchant_id: 12, number: 'JJ-202611-000042', period: '2026-11', due_date: '2026-12-15',
      amount_fen: 1234567 }),
    bill({ id: 43, merchant_id: 12, number: 'JJ-202612-000043', period: '2026-12', due_date: '2027-01-15',
      amount_fen: 1, kind: 'adhoc' }),
    bill({ id: 40, merchant_id: 12, number: 'JJ-202609-000040', period: '2026-09', due_date: '2026-10-15',
      amount_fen: 0, status: 'paid', receipt_no: 'SJ-2026-000040', paid_dt: '2026-10-10T02:03:00+00:00' }),
    bill({ id: 51, merchant_id: 15, number: 'JJ-202611-000051', period: '2026-11', due_date: '2026-12-15',
      amount_fen: 50000 }),
  ]
}

const PHOTO_URL = BASE + '/ticket-photos/'
const PHOTO_MAX_BYTES = 5 * 1024 * 1024
const TICKET_OPEN = ['submitted', 'in_progress']
const TICKET_STATUS_LABEL = { submitted: '待受理', in_progress: '处理中', resolved: '待确认', closed: '已关闭', cancelled: '已取消' }

function ticketStateError(t, rule) {
  return error(409, 'ticket_state', `工单${TICKET_STATUS_LABEL[t.status]}，${rule}`)
}

function photo(id, stage) {
  return { id, stage, event: null }
}

function event(at, action, statusAfter, by, note, photoIds) {
  return { at, action, status_after: statusAfter, by, note: note || null, photo_ids: photoIds || [] }
}

// 工单（created_at 越晚越新）：商户 12 的五张，商户 15 的一张
function defaultTickets() {
  return [
    {
      id: 71, merchant_id: 12, number: 'JJ-T261120-0001', kind: 'repair', urgency: 'urgent', title: '冷柜不制冷',
      description: 'A-001 的冷柜从早上开始不制冷，蔬菜快放不住了。', status: 'in_progress', unit_id: 3, unit_code: 'A-001',
      created_at: '2026-11-20T01:00:00+00:00', due_at: '2026-11-20T05:00:00+00:00', is_overdue: true,
      assignee_name: '王师傅', accepted_at: '2026-11-20T01:30:00+00:00', resolved_at: null, closed_at: null,
      rating: null, rating_comment: null,
      photos: [photo(701, 'report'), photo(702, 'report'), photo(703, 'progress')],
      events: [
        event('2026-11-20T01:00:00+00:00', 'submitted', 'submitted', '商户', null, [701, 702]),
        event('2026-11-20T01:30:00+00:00', 'assigned', 'in_progress', '刘经理', '已安排王师傅'),
        event('2026-11-20T03:10:00+00:00', 'progress', 'in_progress', '王师傅', '压缩机损坏，配件明天到', [703]),
      ],
    },
    {
      // 没填标题：服务器取描述第一行的前 30 个字
      id: 72, merchant_id: 12, number: 'JJ-T261121-0002', kind: 'complaint', urgency: 'normal',
      title: '隔壁摊位每天早上把货堆在通道上，顾客和推车都过不去，已经说',
      description: '隔壁摊位每天早上把货堆在通道上，顾客和推车都过不去，已经说过好几次了。',
      status: 'submitted', unit_id: null, unit_code: null,
      created_at: '2026-11-21T02:00:00+00:00', due_at: '2026-11-23T02:00:00+00:00', is_overdue: false,
      assignee_name: null, accepted_at: null, resolved_at: null, closed_at: null, rating: null, rating_comment: null,
      photos: [],
      events: [event('2026-11-21T02:00:00+00:00', 'submitted', 'submitted', '商户')],
    },
    {
      id: 73, merchant_id: 12, number: 'JJ-T261118-0003', kind: 'repair', urgency: 'normal', title: '水龙头漏水',
      description: '摊位水池的水龙头关不紧。', status: 'resolved', unit_id: 3, unit_code: 'A-001',
      created_at: '2026-11-18T00:00:00+00:00', due_at: '2026-11-20T00:00:00+00:00', is_overdue: false,
      assignee_name: '王师傅', accepted_at: '2026-11-18T01:00:00+00:00', resolved_at: '2026-11-19T06:00:00+00:00',
      closed_at: null, rating: null, rating_comment: null,
      photos: [photo(731, 'report'), photo(732, 'result')],
      events: [
        event('2026-11-18T00:00:00+00:00', 'submitted', 'submitted', '商户', null, [731]),
        event('2026-11-18T01:00:00+00:00', 'accepted', 'in_progress', '王师傅'),
        event('2026-11-19T06:00:00+00:00', 'resolved', 'resolved', '王师傅', '已更换阀芯', [732]),
      ],
    },
    {
      id: 74, merchant_id: 12, number: 'JJ-T261101-0004', kind: 'suggestion', urgency: 'normal', title: '增加停车位',
      description: '早市时段停车位不够。', status: 'closed', unit_id: null, unit_code: null,
      created_at: '2026-11-01T00:00:00+00:00', due_at: '2026-11-08T00:00:00+00:00', is_overdue: false,
      assignee_name: '刘经理', accepted_at: null, resolved_at: null, closed_at: '2026-11-03T00:00:00+00:00',
      rating: null, rating_comment: null, photos: [],
      events: [
        event('2026-11-01T00:00:00+00:00', 'submitted', 'submitted', '商户'),
        event('2026-11-03T00:00:00+00:00', 'closed', 'closed', '刘经理', '已在东侧增设 20 个车位'),
      ],
    },
    {
      id: 75, merchant_id: 12, number: 'JJ-T261031-0005', kind: 'repair', urgency: 'normal', title: '灯不亮',
      description: '摊位上方的灯不亮。', status: 'cancelled', unit_id: 3, unit_code: 'A-001',
      created_at: '2026-10-31T00:00:00+00:00', due_at: '2026-11-02T00:00:00+00:00', is_overdue: false,
      assignee_name: null, accepted_at: null, resolved_at: null, closed_at: '2026-10-31T01:00:00+00:00',
      rating: null, rating_comment: null, photos: [],
      events: [
        event('2026-10-31T00:00:00+00:00', 'submitted', 'submitted', '商户'),
        event('2026-10-31T01:00:00+00:00', 'cancelled', 'cancelled', '商户', '自己修好了'),
      ],
    },
    {
      id: 81, merchant_id: 15, number: 'JJ-T261122-0006', kind: 'repair', urgency: 'normal', title: '排水沟堵塞',
      description: '水产区排水沟堵塞。', status: 'submitted', unit_id: 9, unit_code: 'B-001',
      created_at: '2026-11-22T00:00:00+00:00', due_at: '2026-11-24T00:00:00+00:00', is_overdue: false,
      assignee_name: null, accepted_at: null, resolved_at: null, closed_at: null, rating: null, rating_comment: null,
      photos: [], events: [event('2026-11-22T00:00:00+00:00', 'submitted', 'submitted', '商户')],
    },
  ]
}

// multipart 上传里的文件是否真是 JPEG / PNG（服务器看文件头，这里看测试登记的内容类型）
function isImage(file) {
  return file && (file.type === 'image/jpeg' || file.type === 'image/png')
}

class FakeApi {
  constructor() {
    this.subscribeTemplates = { ticket_progress: 'TPL-ticket-progress' }
    this.requests = []
    this.codes = 0
    this.tokens = {} // token -> openid
    this.openids = {} // code -> openid
    this.bindings = { 'o-owner': [{ merchant_id: 12, role: 'owner', bound_via: 'phone' }] }
    this.phones = { 'phone-code-1': '13800000001', 'phone-code-2': '13900000002' }
    this.bindTokens = { 'IjEi.abc-DEF_1': 15 }
    this.merchants = JSON.parse(JSON.stringify(MERCHANTS))
    this.bills = defaultBills()
    this.orders = []
    this.nextOpenid = 'o-owner'
    this.confirmAfterPolls = 1 // 支付后第几次查询时账单才变为已缴（模拟微信支付通知的延迟）
    this.overrides = {}
    this.tickets = defaultTickets()
    this.nextTicketId = 90
    this.nextPhotoId = 900
    this.now = '2026-11-23T06:00:00+00:00'
    this.paymentLines = { 40: [{ id: 7, method: 'wechat', amount_fen: 0, paid_dt: '2026-10-10T02:03:00+00:00', receipt_no: 'SJ-2026-000040' }] }
  }

  /** 对某个 "METHOD /path" 返回指定回答（一次或永久）。 */
  override(key, response, once = true) {
    this.overrides[key] = { response, once }
  }

  issueCode() {
    this.codes += 1
    const code = 'wx-code-' + this.codes
    this.openids[code] = this.nextOpenid
    return code
  }

  expireTokens() {
    this.tokens = {}
  }

  boundMerchants(openid) {
    return (this.bindings[openid] || []).map((b) => ({
      merchant_id: b.merchant_id,
      merchant_code: this.merchants[b.merchant_id].code,
      merchant_name: this.merchants[b.merchant_id].name,
      role: b.role,
      bound_via: b.bound_via,
    }))
  }

  handle(req) {
    this.requests.push(req)
    const key = `${req.method} ${req.path}`
    const override = this.overrides[key]
    if (override) {
      if (override.once) delete this.overrides[key]
      return typeof override.response === 'function' ? override.response(req) : override.response
    }
    if (key === 'POST /auth/login') return this.login(req)
    const auth = (req.header.Authorization || '').split(' ')
    if (auth[0] !== 'Bearer' || !auth[1]) return error(401, 'unauthorized', '请先登录')
    const openid = this.tokens[auth[1]]
    if (!openid) return error(401, 'invalid_token', '登录已失效，请重新登录')
    req.openid = openid
    if (key === 'POST /auth/bind') return this.bind(req)
    if (key === 'POST /auth/logout') {
      delete this.tokens[auth[1]]
      return { statusCode: 204, data: '' }
    }
    // 其余接口需要绑定商户
    const bindings = this.bindings[openid] || []
    if (!bindings.length) return error(403, 'not_bound', '请先绑定商户')
    let binding = bindings[0]
    const header = req.header['X-Merchant-Id']
    if (header !== undefined && String(header).trim() !== '') {
      if (!/^\d+$/.test(String(header))) return error(400, 'invalid_merchant_header', 'X-Merchant-Id 不正确')
      binding = bindings.find((b) => b.merchant_id === Number(header))
      if (!binding) return error(403, 'merchant_not_bound', '您未绑定该商户')
    }
    req.merchantId = binding.merchant_id
    req.role = binding.role
    if (key === 'GET /me') return this.me(req)
    if (key === 'PATCH /me') return this.patchMe(req)
    if (key === 'GET /bills') return this.listBills(req)
    let m = /^GET \/bills\/(\d+)$/.exec(key)
    if (m) return this.getBill(req, Number(m[1]))
    m = /^GET \/bills\/(\d+)\/receipt$/.exec(key)
    if (m) return this.receipt(req, Number(m[1]))
    if (key === 'POST /payments') return this.createPayment(req)
    m = /^GET \/payments\/([A-Za-z0-9]+)$/.exec(key)
    if (m) return this.getPayment(req, m[1])
    if (key === 'GET /tickets') return this.listTickets(req)
    if (key === 'POST /tickets') return this.createTicket(req)
    m = /^GET \/tickets\/(\d+)$/.exec(key)
    if (m) return this.getTicket(req, Number(m[1]))
    m = /^POST \/tickets\/(\d+)\/photos$/.exec(key)
    if (m) return this.addTicketPhoto(req, Number(m[1]))
    m = /^POST \/tickets\/(\d+)\/(cancel|reopen|rating)$/.exec(key)
    if (m) return this.changeTicket(req, Number(m[1]), m[2])
    return error(404, 'not_found', '请求的内容不存在')
  }

  login(req) {
    const code = req.data && req.data.code
    const openid = this.openids[code]
    if (!openid) return error(401, 'invalid_code', '登录凭证无效，请重新进入小程序')
    delete this.openids[code]
    const token = 'token-' + Object.keys(this.tokens).length + '-' + code
    this.tokens[token] = openid
    const merchants = this.boundMerchants(openid)
    return { statusCode: 200, data: { token, expires_at: '2026-12-23T03:00:00+00:00', is_bound: merchants.length > 0, merchants } }
  }

  bind(req) {
    const body = req.data || {}
    if (!!body.phone_code === !!body.bind_token || Object.keys(body).some((k) => k !== 'phone_code' && k !== 'bind_token')) {
      return error(422, 'validation_failed', '提交的数据不正确', { fields: { _schema: ['请提供 phone_code 或 bind_token 其中之一'] } })
    }
    const bound = []
    const list = this.bindings[req.openid] || (this.bindings[req.openid] = [])
    if (body.phone_code) {
      const phone = this.phones[body.phone_code]
      if (!phone) return error(400, 'invalid_phone_code', '手机号授权已失效，请重新授权')
      const ids = Object.values(this.merchants).filter((mm) => mm.phone === phone || mm.phone2 === phone).map((mm) => mm.id)
      if (!ids.length) return error(404, 'phone_not_registered', '该手机号未登记为商户联系电话，请联系市场管理处')
      ids.forEach((id) => {
        if (!list.some((b) => b.merchant_id === id)) list.push({ merchant_id: id, role: 'owner', bound_via: 'phone' })
        bound.push(id)
      })
    } else {
      const id = this.bindTokens[body.bind_token]
      if (!id) return error(400, 'bind_token_invalid', '二维码无效或已被篡改，请扫描摊位上的商户绑定二维码')
      if (!list.some((b) => b.merchant_id === id)) list.push({ merchant_id: id, role: 'assistant', bound_via: 'qr' })
      bound.push(id)
    }
    const merchants = this.boundMerchants(req.openid)
    return { statusCode: 200, data: { is_bound: true, merchants, bound: merchants.filter((mm) => bound.includes(mm.merchant_id)) } }
  }

  me(req) {
    const merchant = this.merchants[req.merchantId]
    return {
      statusCode: 200,
      data: {
        role: req.role,
        merchant: Object.assign({}, merchant),
        units: [{ id: 3, code: merchant.zone.code + '-001', floor: '1', category: '蔬菜', area_m2: '12.0000', zone: merchant.zone }],
        merchants: this.boundMerchants(req.openid),
        subscribe_templates: Object.assign({}, this.subscribeTemplates),
      },
    }
  }

  patchMe(req) {
    if (req.role !== 'owner') return error(403, 'owner_required', '仅店主可修改商户资料')
    const body = req.data
    if (!body || typeof body !== 'object') return error(400, 'invalid_json', '请求体应为 JSON 对象')
    const fields = {}
    Object.keys(body).forEach((k) => {
      if (k.startsWith('notify_')) {
        if (!(k in this.merchants[req.merchantId])) fields[k] = ['Unknown field.']
        else if (typeof body[k] !== 'boolean') fields[k] = ['Not a valid boolean.']
      } else if (k !== 'contact_name' && k !== 'phone2') fields[k] = ['Unknown field.']
    })
    if (Object.keys(fields).length) return error(422, 'validation_failed', '提交的数据不正确', { fields })
    Object.assign(this.merchants[req.merchantId], body)
    return this.me(req)
  }

  visibleBills(merchantId) {
    return this.bills.filter((b) => b.merchant_id === merchantId)
      .sort((a, b) => (a.due_date < b.due_date ? 1 : a.due_date > b.due_date ? -1 : b.id - a.id))
  }

  listBills(req) {
    const status = req.query.status
    const page = Number(req.query.page || 1)
    const pageSize = Number(req.query.page_size || 20)
    if (status && !['unpaid', 'overdue', 'paid'].includes(status)) {
      return error(422, 'validation_failed', '提交的数据不正确', { fields: { status: ['Must be one of: unpaid, overdue, paid.'] } })
    }
    let list = this.visibleBills(req.merchantId)
    if (status === 'unpaid') list = list.filter((b) => b.status !== 'paid')
    if (status === 'overdue') list = list.filter((b) => b.status !== 'paid' && b.is_overdue)
    if (status === 'paid') list = list.filter((b) => b.status === 'paid')
    const items = list.slice((page - 1) * pageSize, page * pageSize).map((b) => this.summary(b))
    return { statusCode: 200, data: { items, page, page_size: pageSize, total: list.length } }
  }

  summary(b) {
    const keys = ['id', 'number', 'kind', 'status', 'period', 'issue_date', 'due_date', 'amount_fen', 'late_fee_fen',
      'paid_fen', 'outstanding_fen', 'is_overdue']
    const out = {}
    keys.forEach((k) => { out[k] = b[k] })
    out.unit_codes = b.unit_codes || ['A-001']
    return out
  }

  findBill(req, id) {
    return this.bills.find((b) => b.id === id && b.merchant_id === req.merchantId)
  }

  getBill(req, id) {
    const b = this.findBill(req, id)
    if (!b) return error(404, 'bill_not_found', '账单不存在')
    const data = Object.assign(this.summary(b), {
      paid_dt: b.paid_dt || null,
      receipt_no: b.receipt_no || null,
      has_receipt: b.status === 'paid' && !!b.receipt_no,
      unit_codes: ['A-001'],
      note: null,
      lines: [
        { id: b.id * 10, description: '摊位租金', unit_id: 3, unit_code: 'A-001', quantity: '1.0000', unit_label: '月',
          rate_fen: String(b.amount_fen), amount_fen: b.amount_fen, service_start: '2026-10-01', service_end: '2026-10-31' },
      ],
      payments: this.paymentLines[b.id] || [],
    })
    return { statusCode: 200, data }
  }

  receipt(req, id) {
    const b = this.findBill(req, id)
    if (!b) return error(404, 'bill_not_found', '账单不存在')
    if (b.status !== 'paid') return error(409, 'receipt_unavailable', `账单 ${b.number} 尚未结清，暂不能开具收据`)
    return { statusCode: 200, data: '%PDF-1.4 receipt', header: { 'Content-Type': 'application/pdf' } }
  }

  createPayment(req) {
    const ids = req.data && req.data.bill_ids
    if (!Array.isArray(ids) || !ids.length || ids.some((i) => !Number.isInteger(i))) {
      return error(422, 'validation_failed', '提交的数据不正确', { fields: { bill_ids: ['Not a valid list.'] } })
    }
    const bills = []
    for (const id of ids) {
      const b = this.findBill(req, id)
      if (!b) return error(404, 'bill_not_found', '账单不存在')
      if (b.status === 'paid') return error(409, 'bill_not_payable', `账单 ${b.number} 已结清`)
      bills.push(b)
    }
    const n = this.orders.length + 1
    const order = {
      out_trade_no: 'P261123140000' + String(n).padStart(8, '0'),
      amount_fen: bills.reduce((s, b) => s + b.outstanding_fen, 0),
      bill_ids: ids.slice(),
      status: 'open',
      expires_at: '2026-11-23T06:30:00+00:00',
      is_reused: false,
      pay_params: {
        timeStamp: String(1795932000 + n),
        nonceStr: 'n0nce' + n + 'AbCdEf',
        package: 'prepay_id=wx2311400000000000' + n,
        signType: 'RSA',
        paySign: 'c2lnbmF0dXJl' + n + '+/==',
      },
      paid: false,
      recorded: false,
      polls: 0,
      merchant_id: req.merchantId,
    }
    this.orders.push(order)
    const body = Object.assign({}, order)
    delete body.paid
    delete body.recorded
    delete body.polls
    delete body.merchant_id
    return { statusCode: 201, data: body }
  }

  /** GET /payments/{no}：服务器收到微信支付通知（或向微信查单）后订单才变为 paid，账单同时已缴。 */
  getPayment(req, no) {
    const order = this.orders.find((o) => o.out_trade_no === no && o.merchant_id === req.merchantId)
    if (!order) return error(404, 'order_not_found', '订单不存在')
    if (order.paid && !order.recorded) {
      order.polls += 1
      if (order.polls >= this.confirmAfterPolls) {
        order.recorded = true
        order.bill_ids.forEach((bid) => {
          const ob = this.bills.find((x) => x.id === bid)
          ob.paid_fen += ob.outstanding_fen
          ob.outstanding_fen = 0
          ob.status = 'paid'
          ob.is_overdue = false
          ob.receipt_no = 'SJ-2026-0000' + bid
          ob.paid_dt = '2026-11-23T06:00:00+00:00'
        })
      }
    }
    return {
      statusCode: 200,
      data: {
        out_trade_no: order.out_trade_no, status: order.recorded ? 'paid' : order.status, amount_fen: order.amount_fen,
        bill_ids: order.bill_ids.slice(), paid_at: order.recorded ? '2026-11-23T06:00:00+00:00' : null,
        expires_at: order.expires_at,
      },
    }
  }

  // ---- 工单 ----

  unitsOf(merchantId) {
    const merchant = this.merchants[merchantId]
    return [{ id: merchantId === 12 ? 3 : 9, code: merchant.zone.code + '-001' }]
  }

  ticketItem(t) {
    const keys = ['id', 'number', 'kind', 'urgency', 'title', 'status', 'unit_code', 'created_at', 'due_at', 'is_overdue']
    const out = {}
    keys.forEach((k) => { out[k] = t[k] })
    out.photo_count = t.photos.length
    return out
  }

  photoUrl(id) {
    return PHOTO_URL + 'sig-' + id
  }

  ticketDetail(t) {
    const data = Object.assign(this.ticketItem(t), {
      description: t.description,
      assignee_name: t.assignee_name,
      accepted_at: t.accepted_at,
      resolved_at: t.resolved_at,
      closed_at: t.closed_at,
      rating: t.rating,
      rating_comment: t.rating_comment,
      photos: t.photos.map((p) => ({ id: p.id, stage: p.stage, url: this.photoUrl(p.id) })),
      events: t.events.map((e) => ({
        at: e.at, action: e.action, note: e.note, status_after: e.status_after, by: e.by,
        photos: e.photo_ids.map((id) => ({ id, url: this.photoUrl(id) })),
      })),
      can_cancel: TICKET_OPEN.includes(t.status),
      can_rate: t.status === 'resolved',
      can_reopen: t.status === 'resolved',
    })
    return { statusCode: 200, data }
  }

  findTicket(req, id) {
    return this.tickets.find((t) => t.id === id && t.merchant_id === req.merchantId)
  }

  listTickets(req) {
    const status = req.query.status
    const page = Number(req.query.page || 1)
    const pageSize = Number(req.query.page_size || 20)
    if (status && !['open', 'resolved', 'closed'].includes(status)) {
      return error(422, 'validation_failed', '提交的数据不正确', { fields: { status: ['Must be one of: open, resolved, closed.'] } })
    }
    const groups = { open: TICKET_OPEN, resolved: ['resolved'], closed: ['closed', 'cancelled'] }
    const list = this.tickets
      .filter((t) => t.merchant_id === req.merchantId && (!status || groups[status].includes(t.status)))
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : b.id - a.id))
    const items = list.slice((page - 1) * pageSize, page * pageSize).map((t) => this.ticketItem(t))
    return { statusCode: 200, data: { items, page, page_size: pageSize, total: list.length } }
  }

  createTicket(req) {
    const body = req.data
    if (!body || typeof body !== 'object' || Array.isArray(body)) return error(400, 'invalid_json', '请求体应为 JSON 对象')
    const fields = {}
    const allowed = ['kind', 'description', 'title', 'unit_id', 'urgency']
    Object.keys(body).forEach((k) => { if (!allowed.includes(k)) fields[k] = ['Unknown field.'] })
    if (!['repair', 'complaint', 'suggestion'].includes(body.kind)) fields.kind = ['Must be one of: repair, complaint, suggestion.']
    if (typeof body.description !== 'string' || !body.description.trim()) fields.description = ['Missing data for required field.']
    else if (body.description.length > 1000) fields.description = ['Longer than maximum length 1000.']
    if (body.title !== undefined && body.title !== null && (typeof body.title !== 'string' || body.title.length > 60)) {
      fields.title = ['Longer than maximum length 60.']
    }
    if (body.urgency !== undefined && !['normal', 'urgent'].includes(body.urgency)) fields.urgency = ['Must be one of: normal, urgent.']
    if (body.unit_id !== undefined && body.unit_id !== null && !Number.isInteger(body.unit_id)) fields.unit_id = ['Not a valid integer.']
    if (Object.keys(fields).length) return error(422, 'validation_failed', '提交的数据不正确', { fields })
    let unit = null
    if (body.unit_id !== undefined && body.unit_id !== null) {
      unit = this.unitsOf(req.merchantId).find((u) => u.id === body.unit_id)
      if (!unit) return error(422, 'unit_not_own', '所选摊位不属于本商户')
    }
    this.nextTicketId += 1
    const id = this.nextTicketId
    const description = body.description.trim()
    // 没填标题：取描述第一行的前 30 个字
    const title = body.title ? body.title.trim() : description.split('\n')[0].trim().slice(0, 30)
    const ticket = {
      id, merchant_id: req.merchantId, number: 'JJ-T261123-' + String(id).padStart(4, '0'), kind: body.kind,
      urgency: body.urgency || 'normal', title, description,
      status: 'submitted', unit_id: unit ? unit.id : null, unit_code: unit ? unit.code : null,
      created_at: this.now, due_at: '2026-11-25T06:00:00+00:00', is_overdue: false,
      assignee_name: null, accepted_at: null, resolved_at: null, closed_at: null, rating: null, rating_comment: null,
      photos: [], events: [event(this.now, 'submitted', 'submitted', '商户')],
    }
    this.tickets.push(ticket)
    const res = this.ticketDetail(ticket)
    res.statusCode = 201
    return res
  }

  getTicket(req, id) {
    const t = this.findTicket(req, id)
    if (!t) return error(404, 'ticket_not_found', '工单不存在')
    return this.ticketDetail(t)
  }

  /** POST /tickets/{id}/photos：multipart/form-data，文件字段 file（由 wx.uploadFile 发出）。 */
  addTicketPhoto(req, id) {
    const t = this.findTicket(req, id)
    if (!t) return error(404, 'ticket_not_found', '工单不存在')
    if (!req.multipart) return error(415, 'unsupported_media_type', '请以 multipart/form-data 上传照片（字段名 file）')
    if (!TICKET_OPEN.includes(t.status)) return ticketStateError(t, '不能再添加照片')
    const file = req.files && req.files.file
    if (!file) return error(422, 'validation_failed', '请选择要上传的照片', { fields: { file: ['缺少照片'] } })
    if (file.size > PHOTO_MAX_BYTES) return error(413, 'photo_too_large', '照片不能超过 5 MB')
    if (!isImage(file)) return error(415, 'photo_type', '只能上传 JPG 或 PNG 格式的照片')
    if (t.photos.filter((p) => p.stage === 'report').length >= 9) return error(409, 'too_many_photos', '每个工单每个环节最多 9 张照片')
    this.nextPhotoId += 1
    const p = photo(this.nextPhotoId, 'report')
    p.file = file
    t.photos.push(p)
    if (t.status === 'submitted' && t.events.length === 1) t.events[0].photo_ids.push(p.id)
    return { statusCode: 201, data: { id: p.id, url: this.photoUrl(p.id) } }
  }

  changeTicket(req, id, action) {
    const t = this.findTicket(req, id)
    if (!t) return error(404, 'ticket_not_found', '工单不存在')
    const body = req.data === undefined ? {} : req.data
    if (!body || typeof body !== 'object' || Array.isArray(body)) return error(400, 'invalid_json', '请求体应为 JSON 对象')
    const note = typeof body.note === 'string' ? body.note.trim() : ''
    if (action === 'cancel') {
      if (!TICKET_OPEN.includes(t.status)) return ticketStateError(t, '不能撤销')
      Object.assign(t, { status: 'cancelled', closed_at: this.now, is_overdue: false })
      t.events.push(event(this.now, 'cancelled', 'cancelled', '商户', note || null))
    } else if (action === 'reopen') {
      if (!note) return error(422, 'validation_failed', '提交的数据不正确', { fields: { note: ['Missing data for required field.'] } })
      if (t.status !== 'resolved') return ticketStateError(t, '只有已处理的工单可以要求重新处理')
      Object.assign(t, { status: 'in_progress', resolved_at: null })
      t.events.push(event(this.now, 'reopened', 'in_progress', '商户', note))
    } else {
      const rating = body.rating
      if (!Number.isInteger(rating) || rating < 1 || rating > 5) {
        return error(422, 'validation_failed', '提交的数据不正确', { fields: { rating: ['Must be greater than or equal to 1 and less than or equal to 5.'] } })
      }
      if (body.comment !== undefined && (typeof body.comment !== 'string' || body.comment.length > 300)) {
        return error(422, 'validation_failed', '提交的数据不正确', { fields: { comment: ['Longer than maximum length 300.'] } })
      }
      if (t.status !== 'resolved') return ticketStateError(t, '只有已处理的工单可以评价')
      Object.assign(t, { status: 'closed', closed_at: this.now, rating, rating_comment: body.comment || null })
      t.events.push(event(this.now, 'rated', 'closed', '商户', body.comment || null))
    }
    return this.ticketDetail(t)
  }

  /** 用户在微信支付中付款（wx.requestPayment 成功时由测试调用）。 */
  payByParams(params) {
    const order = this.orders.find((o) => o.pay_params.package === params.package && o.pay_params.paySign === params.paySign
      && o.pay_params.timeStamp === params.timeStamp && o.pay_params.nonceStr === params.nonceStr)
    if (!order) return false
    order.paid = true
    return true
  }
}

module.exports = { FakeApi, BASE, PHOTO_URL, error }
