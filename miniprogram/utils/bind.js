// 摊位二维码：后台打印的是 PUBLIC_BASE_URL/mp/bind?t=<令牌>，也接受令牌本身。
const BIND_PATH = '/mp/bind'

function queryParam(query, name) {
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const key = eq >= 0 ? part.slice(0, eq) : part
    if (key === name) {
      const value = eq >= 0 ? part.slice(eq + 1) : ''
      try {
        return decodeURIComponent(value.replace(/\+/g, ' '))
      } catch (e) {
        return ''
      }
    }
  }
  return ''
}

/** 从扫码内容（完整链接或令牌）取出 bind_token；无法识别时返回 ''。 */
function extractBindToken(text) {
  let value = String(text || '').trim()
  if (!value) return ''
  // “扫普通链接二维码打开小程序”时，链接经 encodeURIComponent 放在 q 参数中
  if (/^https?%3A/i.test(value)) {
    try {
      value = decodeURIComponent(value)
    } catch (e) {
      return ''
    }
  }
  if (value.indexOf('://') >= 0 || value.indexOf(BIND_PATH) === 0) {
    const q = value.indexOf('?')
    if (q < 0) return ''
    const query = value.slice(q + 1).split('#')[0]
    return queryParam(query, 't')
  }
  if (/\s/.test(value)) return ''
  return value
}

module.exports = { extractBindToken, BIND_PATH }
