const { formatFen, sumFen } = require('../utils/money')

describe('金额显示（整数分）', () => {
  test.each([
    [0, '¥0.00'],
    [1, '¥0.01'],
    [10, '¥0.10'],
    [99, '¥0.99'],
    [100, '¥1.00'],
    [77120, '¥771.20'],
    [123456, '¥1,234.56'],
    [1234567, '¥12,345.67'],
    [100000000, '¥1,000,000.00'],
    [-150, '-¥1.50'],
    [Number.MAX_SAFE_INTEGER, '¥90,071,992,547,409.91'],
  ])('%p 分显示为 %s', (fen, text) => {
    expect(formatFen(fen)).toBe(text)
  })

  test('不是整数分的值不显示成金额', () => {
    expect(formatFen(1.5)).toBe('—')
    expect(formatFen('100')).toBe('—')
    expect(formatFen(null)).toBe('—')
  })

  test('合计按整数分相加，不产生浮点误差', () => {
    // 0.1 + 0.2 元在浮点下是 0.30000000000000004
    expect(formatFen(sumFen([10, 20]))).toBe('¥0.30')
    expect(formatFen(sumFen([77120, 1234567, 1]))).toBe('¥13,116.88')
  })
})
