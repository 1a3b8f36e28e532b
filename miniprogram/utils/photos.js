// 工单照片：从相册或相机选择（压缩图），逐张上传到 /tickets/{id}/photos。
const api = require('./api')
const config = require('../config')

/** wx.chooseMedia 选图，最多 count 张；返回 [{path, size}]，取消时返回 []。超过大小上限的照片不加入并提示。 */
function choosePhotos(count) {
  if (count <= 0) {
    wx.showToast({ title: `最多 ${config.TICKET_PHOTO_MAX} 张照片`, icon: 'none' })
    return Promise.resolve([])
  }
  return new Promise((resolve) => {
    wx.chooseMedia({
      count,
      mediaType: ['image'],
      sizeType: ['compressed'],
      sourceType: ['album', 'camera'],
      success: (res) => {
        const files = (res.tempFiles || []).map((f) => ({ path: f.tempFilePath, size: f.size || 0 }))
        const fitting = files.filter((f) => f.size <= config.TICKET_PHOTO_MAX_BYTES)
        if (fitting.length < files.length) {
          const mb = Math.round(config.TICKET_PHOTO_MAX_BYTES / 1024 / 1024)
          wx.showToast({ title: `照片不能超过 ${mb} MB`, icon: 'none' })
        }
        resolve(fitting.slice(0, count))
      },
      fail: () => resolve([]), // 用户取消
    })
  })
}

/**
 * 逐张上传，onProgress(第几张, 共几张)。一张照片被拒（413 太大、415 格式不对）时继续传下一张；
 * 其他错误（工单已关闭、照片已满、网络失败）停止。返回 { uploaded, failures: [{index, message}] }。
 */
async function uploadPhotos(ticketId, paths, onProgress) {
  const failures = []
  let uploaded = 0
  for (let i = 0; i < paths.length; i++) {
    if (onProgress) onProgress(i + 1, paths.length)
    try {
      // eslint-disable-next-line no-await-in-loop
      await api.upload(`/tickets/${ticketId}/photos`, paths[i], { silent: true })
      uploaded += 1
    } catch (err) {
      failures.push({ index: i + 1, message: err.message })
      if (err.status !== 413 && err.status !== 415) {
        for (let j = i + 1; j < paths.length; j++) failures.push({ index: j + 1, message: '未上传' })
        break
      }
    }
  }
  return { uploaded, failures }
}

/** 上传失败的说明：第 2 张：照片不能超过 5 MB；同一原因的合并写。 */
function failureText(failures) {
  const byMessage = []
  failures.forEach((f) => {
    const found = byMessage.find((g) => g.message === f.message)
    if (found) found.indexes.push(f.index)
    else byMessage.push({ message: f.message, indexes: [f.index] })
  })
  return byMessage.map((g) => `第 ${g.indexes.join('、')} 张：${g.message}`).join('；')
}

module.exports = { choosePhotos, uploadPhotos, failureText }
