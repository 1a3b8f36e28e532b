// 缴费：下单 -> wx.requestPayment -> 查询订单直到已缴（GET /payments/{out_trade_no}）。
const api = require('./api')
const config = require('../config')

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// pay_params 原样交给 wx.requestPayment（timeStamp、nonceStr、package、signType、paySign）。
function requestPayment(payParams) {
  return new Promise((resolve) => {
    wx.requestPayment(Object.assign({}, payParams, {
      success: () => resolve({ ok: true }),
      fail: (res) => resolve({ ok: false, errMsg: (res && res.errMsg) || '' }),
    }))
  })
}

// 订单状态：服务器收到微信支付通知后为 paid；通知迟到时服务器会主动向微信支付查单。
async function orderStatus(outTradeNo) {
  const order = await api.get('/payments/' + encodeURIComponent(outTradeNo), { silent: true })
  return order && order.status
}

/**
 * 支付这些账单。返回：
 *  'paid'      支付成功且服务器已确认；
 *  'pending'   已支付，服务器尚未确认（稍后刷新）；
 *  'cancelled' 用户取消；
 *  'refresh'   账单状态已变（如上一笔支付刚完成），应刷新；
 *  'failed'    下单或支付失败（已提示）。
 */
async function payBills(billIds) {
  const ids = billIds.map(Number)
  if (!ids.length) {
    wx.showToast({ title: '请选择要缴费的账单', icon: 'none' })
    return 'failed'
  }
  let order
  wx.showLoading({ title: '正在下单', mask: true })
  try {
    order = await api.post('/payments', { bill_ids: ids }, { silent: true })
  } catch (err) {
    wx.hideLoading()
    if (err.code === 'payment_in_progress' || err.code === 'bill_not_payable' || err.code === 'nothing_owed') {
      wx.showModal({ title: '提示', content: err.message, showCancel: false })
      return 'refresh'
    }
    api.showError(err.message)
    return 'failed'
  }
  wx.hideLoading()

  const result = await requestPayment(order.pay_params)
  if (!result.ok) {
    if (/cancel/.test(result.errMsg)) {
      wx.showToast({ title: '已取消', icon: 'none' })
      return 'cancelled'
    }
    wx.showModal({ title: '支付失败', content: '支付未完成，请稍后再试', showCancel: false })
    return 'failed'
  }

  wx.showLoading({ title: '支付结果确认中', mask: true })
  for (let i = 0; i < config.PAY_POLL_TIMES; i++) {
    let status = null
    try {
      status = await orderStatus(order.out_trade_no)
    } catch (e) {
      status = null
    }
    if (status === 'paid') {
      wx.hideLoading()
      wx.showToast({ title: '缴费成功', icon: 'success' })
      return 'paid'
    }
    if (i < config.PAY_POLL_TIMES - 1) await sleep(config.PAY_POLL_INTERVAL_MS)
  }
  wx.hideLoading()
  wx.showModal({ title: '支付结果确认中', content: '已完成支付，银行确认需要一点时间，请稍后刷新账单查看。', showCancel: false })
  return 'pending'
}

module.exports = { payBills, requestPayment }
