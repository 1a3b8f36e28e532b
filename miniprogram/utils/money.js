// 金额以“分”为整数传输与计算；这里只做显示，不用浮点除法。

function isFen(value) {
  return typeof value === 'number' && Number.isSafeInteger(value)
}

// 12345678 -> "¥123,456.78"；0 -> "¥0.00"；1 -> "¥0.01"；-150 -> "-¥1.50"
function formatFen(fen) {
  if (!isFen(fen)) return '—'
  const negative = fen < 0
  const digits = String(negative ? -fen : fen).padStart(3, '0')
  const yuan = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  const cents = digits.slice(-2)
  return `${negative ? '-' : ''}¥${yuan}.${cents}`
}

// 整数分求和（账单合计）
function sumFen(values) {
  return values.reduce((total, v) => total + (isFen(v) ? v : 0), 0)
}

module.exports = { formatFen, sumFen, isFen }
