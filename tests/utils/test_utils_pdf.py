"""PDF documents: the e-receipt renders with real Chinese text, QR codes are valid PNGs."""
import base64
import shutil
import struct
import subprocess
import zlib
from datetime import datetime, timezone

import jinja2
import pytest
import qrcode

from app.utils import pdf as pdf_module
from app.utils.money import amount_in_chinese
from app.utils.pdf import PdfUnavailable, qr_data_uri, render_html, render_pdf

needs_wkhtmltopdf = pytest.mark.skipif(shutil.which("wkhtmltopdf") is None, reason="wkhtmltopdf not installed")
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")


def receipt_context(**changes):
    ctx = {
        "market_name": "金华农贸批发市场",
        "receipt_no": "SJ-202611-000123",
        "merchant_name": "张三水产批发部",
        "unit_codes": ["A区-101", "A区-102"],
        "period": "2026年11月",
        "lines": [
            {"name": "铺位租金", "quantity": "1 个月", "unit_price": "¥3,000.00/月", "amount_fen": 300000},
            {"name": "管理费", "quantity": "48.5 平方米", "unit_price": "¥6.00/平方米", "amount_fen": 29100},
            {"name": "电费", "quantity": "1,234.5 千瓦时", "unit_price": "¥0.85/千瓦时", "amount_fen": 104933},
            {"name": "水费", "quantity": "36 吨", "unit_price": "¥4.20/吨", "amount_fen": 15120},
        ],
        "late_fee_fen": 1234,
        "total_fen": 450387,
        "paid_dt": datetime(2026, 11, 23, 6, 5, tzinfo=timezone.utc),
        "payment_method": "微信支付",
        "transaction_id": "4200002345202611231234567890",
        "verify_url": "https://market.example.cn/r/SJ-202611-000123?c=8f3a1b",
        "issuer": "金华农贸市场管理有限公司",
        "cashier": "李会计",
        "remark": "<b>加粗</b> & 转义",
    }
    ctx.update(changes)
    return ctx


def decode_png(data):
    """Return (width, height, rows of 0/1 pixels) of a 1-bit greyscale PNG (filter 0 only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (1, 0, 0)
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8 + 1
    rows = []
    for y in range(height):
        line = raw[y * stride:(y + 1) * stride]
        assert line[0] == 0
        bits = "".join(f"{b:08b}" for b in line[1:])[:width]
        rows.append([int(b) for b in bits])
    return width, height, rows


def test_qr_data_uri_is_png_of_the_qr_matrix():
    text = "https://market.example.cn/r/SJ-202611-000123?c=8f3a1b"
    uri = qr_data_uri(text, scale=3)
    assert uri.startswith("data:image/png;base64,")
    width, height, pixels = decode_png(base64.b64decode(uri.split(",", 1)[1]))
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    assert width == height == len(matrix) * 3
    for y, modules in enumerate(matrix):
        for x, dark in enumerate(modules):
            for dy in range(3):
                for dx in range(3):
                    assert pixels[y * 3 + dy][x * 3 + dx] == (0 if dark else 1)


def test_receipt_html_escapes_user_text_and_uses_filters():
    html = render_html("documents/receipt.html", receipt_context())
    assert "&lt;b&gt;加粗&lt;/b&gt; &amp; 转义" in html
    assert "<b>加粗</b>" not in html
    assert "¥3,000.00" in html and "¥4,503.87" in html
    assert amount_in_chinese(450387) in html
    assert "2026-11-23 14:05" in html  # 06:05 UTC in Asia/Shanghai
    assert "A区-101、A区-102" in html
    assert "WenQuanYi Micro Hei" in html
    assert 'src="data:image/png;base64,' in html


def test_receipt_accepts_given_capitals_text_time_and_qr():
    html = render_html("documents/receipt.html", receipt_context(
        total_chinese="肆仟伍佰零叁元捌角柒分", paid_dt="2026-11-23 14:05", unit_codes="B-7",
        verify_qr="data:image/png;base64,AAAA", late_fee_fen=0, transaction_id="", remark=None,
    ))
    assert "肆仟伍佰零叁元捌角柒分" in html
    assert 'src="data:image/png;base64,AAAA"' in html
    assert "滞纳金" not in html
    assert "交易单号" not in html


@needs_wkhtmltopdf
@needs_poppler
def test_receipt_pdf_has_real_chinese_text(tmp_path):
    data = render_pdf("documents/receipt.html", receipt_context())
    assert data.startswith(b"%PDF")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True).stdout.decode("utf-8")
    squeezed = "".join(text.split())
    assert "张三水产批发部" in squeezed
    assert "肆仟伍佰零叁元捌角柒分" in squeezed
    assert "收款收据" in squeezed
    assert "SJ-202611-000123" in squeezed
    assert "¥4,503.87" in squeezed and "¥12.34" in squeezed
    assert "2026-11-2314:05" in squeezed
    assert "<b>加粗</b>&转义" in squeezed  # user text printed literally, not as markup
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True).stdout
    assert "Pages:           1" in info
    assert "A5" in info  # the template asks for A5 landscape
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout
    assert "WenQuanYiMicroHei" in fonts
    # A picture of page 1 for a person to look at (not asserted beyond existing).
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 1000


@needs_wkhtmltopdf
def test_caller_options_override_template_page_size(tmp_path):
    data = render_pdf("documents/receipt.html", receipt_context(), {"page-size": "A4", "orientation": "Portrait"})
    path = tmp_path / "a4.pdf"
    path.write_bytes(data)
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True).stdout
        assert "A4" in info


def test_wkhtmltopdf_runs_without_local_file_access_or_javascript(monkeypatch):
    seen = {}

    def fake_run(args, **kwargs):
        seen["args"] = args
        seen["input"] = kwargs["input"]
        return subprocess.CompletedProcess(args, 0, b"%PDF-1.4 fake", b"")

    monkeypatch.setattr(pdf_module.shutil, "which", lambda name: "/usr/bin/wkhtmltopdf")
    monkeypatch.setattr(pdf_module.subprocess, "run", fake_run)
    assert render_pdf("documents/receipt.html", receipt_context()) == b"%PDF-1.4 fake"
    args = seen["args"]
    assert "--disable-local-file-access" in args
    assert "--disable-javascript" in args
    assert "--enable-local-file-access" not in args
    assert args[args.index("--page-size") + 1] == "A5"
    assert args[-2:] == ["-", "-"]
    assert "张三水产批发部".encode("utf-8") in seen["input"]


@pytest.mark.parametrize("option", ["enable-local-file-access", "--enable-local-file-access", "allow", "run-script"])
def test_unsafe_options_are_refused(monkeypatch, option):
    monkeypatch.setattr(pdf_module.shutil, "which", lambda name: "/usr/bin/wkhtmltopdf")
    with pytest.raises(ValueError):
        render_pdf("documents/receipt.html", receipt_context(), {option: "/"})


def test_missing_wkhtmltopdf_raises_pdf_unavailable(monkeypatch):
    monkeypatch.setattr(pdf_module.shutil, "which", lambda name: None)
    with pytest.raises(PdfUnavailable, match="wkhtmltopdf"):
        render_pdf("documents/receipt.html", receipt_context())


def test_failed_conversion_raises_pdf_error(monkeypatch):
    monkeypatch.setattr(pdf_module.shutil, "which", lambda name: "/usr/bin/wkhtmltopdf")
    monkeypatch.setattr(pdf_module.subprocess, "run",
                        lambda args, **kw: subprocess.CompletedProcess(args, 1, b"", b"Error: boom"))
    with pytest.raises(pdf_module.PdfError, match="boom"):
        render_pdf("documents/receipt.html", receipt_context())


def test_receipt_renders_with_only_the_required_fields():
    ctx = receipt_context()
    for optional in ("late_fee_fen", "transaction_id", "cashier", "remark"):
        del ctx[optional]
    html = render_html("documents/receipt.html", ctx)
    assert "张三水产批发部" in html and "滞纳金" not in html
    with pytest.raises(jinja2.UndefinedError):  # a missing required field is an error, not a blank
        render_html("documents/receipt.html", {k: v for k, v in ctx.items() if k != "merchant_name"})
