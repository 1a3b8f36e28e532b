// 按状态分页的列表（账单、工单）：第 1 页替换列表，之后追加；加载期间切换了标签则丢弃这次结果。
const api = require('./api')
const config = require('../config')

async function loadStatusPage(page, path, view, pageNo) {
  const status = page.data.status
  page.setData({ loading: true })
  try {
    const data = await api.get(`${path}?status=${status}&page=${pageNo}&page_size=${config.PAGE_SIZE}`)
    if (status !== page.data.status) return
    const items = (pageNo === 1 ? [] : page.data.items).concat(data.items.map(view))
    page.setData({ items, page: pageNo, total: data.total, hasMore: items.length < data.total, loaded: true })
  } catch (err) {
    page.setData({ loaded: true }) // 错误已提示
  } finally {
    page.setData({ loading: false })
  }
}

module.exports = { loadStatusPage }
