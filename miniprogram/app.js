// 市场管家 商户小程序
App({
  onLaunch() {
    // 登录在各页面 onShow 时按需进行（utils/api.js），这里无需处理。
  },
})
