// 登录状态：API 令牌、当前商户、可切换的商户列表，保存在本地缓存中。
const KEYS = {
  token: 'ms_token',
  merchantId: 'ms_merchant_id',
  merchants: 'ms_merchants',
}

function read(key) {
  try {
    const value = wx.getStorageSync(key)
    return value === '' || value === undefined ? null : value
  } catch (e) {
    return null
  }
}

function write(key, value) {
  try {
    if (value === null || value === undefined) wx.removeStorageSync(key)
    else wx.setStorageSync(key, value)
  } catch (e) {
    // 缓存写入失败时仅影响下次启动
  }
}

function getToken() {
  return read(KEYS.token)
}

function setToken(token) {
  write(KEYS.token, token)
}

function getMerchants() {
  return read(KEYS.merchants) || []
}

function getMerchantId() {
  const id = read(KEYS.merchantId)
  return id === null ? null : Number(id)
}

function setMerchantId(id) {
  write(KEYS.merchantId, id === null || id === undefined ? null : Number(id))
}

// 保存绑定的商户列表；当前商户不在列表中时改选第一个。
function setMerchants(merchants) {
  const list = Array.isArray(merchants) ? merchants : []
  write(KEYS.merchants, list)
  const current = getMerchantId()
  if (!list.some((m) => m.merchant_id === current)) {
    setMerchantId(list.length ? list[0].merchant_id : null)
  }
}

function currentMerchant() {
  const id = getMerchantId()
  return getMerchants().find((m) => m.merchant_id === id) || null
}

function clear() {
  write(KEYS.token, null)
  write(KEYS.merchantId, null)
  write(KEYS.merchants, null)
}

module.exports = {
  KEYS,
  getToken,
  setToken,
  getMerchants,
  setMerchants,
  getMerchantId,
  setMerchantId,
  currentMerchant,
  clear,
}
