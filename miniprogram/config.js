// 小程序配置：服务器地址等在这里统一修改。
module.exports = {
  // 商户小程序 API 的地址（本地演示：make run 启动的服务）。正式发布时改为已在小程序后台登记的 https 域名。
  API_BASE: 'http://127.0.0.1:5000/api/mp/v1',
  // 每页账单数（API 最多 50）
  PAGE_SIZE: 20,
  // 支付成功后查询订单状态的次数与间隔（毫秒）：服务器收到微信支付通知（或主动查单）后才标为已缴
  PAY_POLL_TIMES: 6,
  PAY_POLL_INTERVAL_MS: 1500,
  // 工单照片：每个工单最多 9 张（商户提交的照片），每张不超过 5 MB（服务器同样检查）
  TICKET_PHOTO_MAX: 9,
  TICKET_PHOTO_MAX_BYTES: 5 * 1024 * 1024,

  // 仅用于本地演示（见 README.md）：开发者工具里 wx.login / 手机号按钮给出的 code 假微信服务器并不认识。
  // 填入假微信服务器地址（如 'http://127.0.0.1:9100'）后，登录前先把 code 登记到假微信（POST /_fake/codes），
  // 手机号 code 登记为 DEMO_PHONE（POST /_fake/phones）。只在 API_BASE 指向本机时生效；正式版保持为空。
  FAKE_WECHAT_BASE: '',
  DEMO_OPENID: 'devtools-demo-user',
  DEMO_PHONE: '13800000001',
}
