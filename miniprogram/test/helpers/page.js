// Page() 在 miniprogram-simulate 中不存在：把页面定义转成 Component()，生命周期函数作为方法由测试调用。
const path = require('path')
const simulate = require('miniprogram-simulate')

const ROOT = path.resolve(__dirname, '..', '..')

global.Page = (options) => {
  const methods = {}
  let data = {}
  Object.keys(options).forEach((key) => {
    if (key === 'data') data = options.data
    else if (typeof options[key] === 'function') methods[key] = options[key]
  })
  // eslint-disable-next-line no-undef
  return Component({ data, methods })
}
global.getCurrentPages = () => []

/** 每个测试文件只加载一次页面（simulate.load 会注册组件）。 */
function loadPage(name) {
  return simulate.load(path.join(ROOT, 'pages', name, name), { rootPath: ROOT })
}

function renderPage(id) {
  const page = simulate.render(id)
  page.attach(document.createElement('parent-wrapper'))
  return page
}

/** 等待所有挂起的 Promise 与 0 毫秒定时器。 */
async function flush(times = 5) {
  for (let i = 0; i < times; i++) {
    // eslint-disable-next-line no-await-in-loop
    await simulate.sleep(0)
  }
}

// 页面的 class 在渲染后带前缀（main--）：按页面里写的 class 选择 DOM 元素。
function css(selector) {
  return selector.replace(/\.([A-Za-z_][\w-]*)/g, '.main--$1')
}

function root(node) {
  return node && node.dom ? node.dom : node
}

function $(node, selector) {
  return root(node).querySelector(css(selector))
}

function $$(node, selector) {
  return Array.from(root(node).querySelectorAll(css(selector)))
}

function clean(s) {
  return s.replace(/\s+/g, ' ').trim()
}

function text(node, selector) {
  const el = $(node, selector)
  return el ? clean(el.textContent) : null
}

function texts(node, selector) {
  return $$(node, selector).map((el) => clean(el.textContent))
}

function hasClass(el, cls) {
  return root(el).classList.contains('main--' + cls)
}

module.exports = { ROOT, simulate, loadPage, renderPage, flush, $, $$, text, texts, hasClass }
