"""PDF documents (receipts, statements): Jinja2 HTML from app/templates rendered by wkhtmltopdf.

The HTML carries user text (merchant names, remarks), so wkhtmltopdf runs with local file access
and JavaScript off; images are embedded as data: URIs. Chinese text uses the font
"WenQuanYi Micro Hei" (Debian fonts-wqy-microhei), whose glyphs map back to the right characters
when the PDF is searched or copied.
"""
from __future__ import annotations

import base64
import functools
import shutil
import struct
import subprocess
import zlib
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import jinja2
import pdfkit
import qrcode

from app.utils.dates import format_local
from app.utils.money import amount_in_chinese, fen_to_yuan_str, format_yuan

__all__ = [
    "PdfError",
    "PdfUnavailable",
    "render_html",
    "render_pdf",
    "qr_data_uri",
    "TEMPLATE_DIR",
    "FONT_FAMILY",
]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
FONT_FAMILY = "WenQuanYi Micro Hei"

#: wkhtmltopdf options every document gets; a template may add page options with
#: <meta name="pdfkit-page-size" content="A5"> (read by pdfkit), the caller's options win.
DEFAULT_OPTIONS = {
    "encoding": "UTF-8",
    "page-size": "A4",
    "margin-top": "10mm",
    "margin-bottom": "10mm",
    "margin-left": "10mm",
    "margin-right": "10mm",
    "disable-smart-shrinking": "",
    "print-media-type": "",
}
#: Options that are always set and cannot be overridden: the HTML holds user text.
FORCED_OPTIONS = {
    "disable-local-file-access": "",
    "disable-javascript": "",
}
_FORBIDDEN_OPTIONS = {"enable-local-file-access", "allow", "enable-javascript", "run-script",
                      "enable-plugins", "cookie-jar", "post-file"}

#: Seconds before a stuck wkhtmltopdf is killed.
TIMEOUT_SECONDS = 60


class PdfError(RuntimeError):
    """A PDF could not be produced."""


class PdfUnavailable(PdfError):
    """wkhtmltopdf is not installed on this machine (Debian: apt-get install wkhtmltopdf)."""


def _local_dt(value, fmt="%Y-%m-%d %H:%M"):
    """Jinja filter: an aware datetime in Asia/Shanghai (naive taken as UTC); text passes through."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return format_local(value, fmt)
    return value


@functools.lru_cache(maxsize=1)
def document_env() -> jinja2.Environment:
    """The Jinja2 environment for documents: autoescaped, money filters registered."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = format_yuan
    env.filters["yuan_plain"] = fen_to_yuan_str
    env.filters["chinese_amount"] = amount_in_chinese
    env.filters["local_dt"] = _local_dt
    env.globals["qr_data_uri"] = qr_data_uri
    env.globals["font_family"] = FONT_FAMILY
    return env


def render_html(template_name, context) -> str:
    """Render app/templates/<template_name> with the document filters to an HTML string."""
    return document_env().get_template(template_name).render(**context)


def _wkhtmltopdf() -> str:
    """Path of the wkhtmltopdf binary, or PdfUnavailable."""
    path = shutil.which("wkhtmltopdf")
    if not path:
        raise PdfUnavailable("wkhtmltopdf 未安装，无法生成 PDF（Debian：apt-get install wkhtmltopdf）")
    return path


def render_pdf(template_name, context, options=None) -> bytes:
    """Render a document template to PDF bytes with wkhtmltopdf (via pdfkit)."""
    binary = _wkhtmltopdf()
    html = render_html(template_name, context)
    config = pdfkit.configuration(wkhtmltopdf=binary)
    kit = pdfkit.PDFKit(html, "string", configuration=config)
    # Precedence: defaults < the template's <meta name="pdfkit-..."> tags (pdfkit reads them into
    # kit.options) < the caller's options < the forced safety options. User text is autoescaped,
    # so it cannot add a <meta> tag; only templates set page options this way.
    merged = dict(DEFAULT_OPTIONS)
    for source in (kit.options, options or {}):
        for key, value in source.items():
            name = key.lstrip("-").lower()
            if name in _FORBIDDEN_OPTIONS:
                raise ValueError(f"wkhtmltopdf option --{name} is not allowed for documents with user text")
            merged[name] = value
    merged.update(FORCED_OPTIONS)
    kit.options = OrderedDict(merged)
    args = kit.command()  # "... - -": HTML on stdin, PDF on stdout
    # pdfkit's own to_pdf() has no timeout; run the command it built with one.
    try:
        done = subprocess.run(args, input=html.encode("utf-8"), capture_output=True,
                              timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PdfError(f"wkhtmltopdf timed out after {TIMEOUT_SECONDS}s") from exc
    except OSError as exc:
        raise PdfUnavailable(f"wkhtmltopdf 无法运行：{exc}") from exc
    # wkhtmltopdf may exit 1 after writing a good PDF (e.g. a resource failed to load).
    if not done.stdout.startswith(b"%PDF"):
        detail = done.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise PdfError(f"wkhtmltopdf failed (exit {done.returncode}): {detail}")
    return done.stdout


def _png(matrix, scale) -> bytes:
    """Encode a matrix of booleans (True = dark) as a 1-bit greyscale PNG, scale px per module."""
    size = len(matrix) * scale
    raw = bytearray()
    for modules in matrix:
        bits = "".join(("0" if dark else "1") * scale for dark in modules)
        bits += "0" * (-len(bits) % 8)
        line = b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")  # filter type 0
        raw += line * scale

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


def qr_data_uri(text, scale=8, border=4) -> str:
    """A QR code of text as a "data:image/png;base64,..." URI for <img src> in documents."""
    # qrcode makes the matrix; its PNG writers need Pillow or pypng, neither of which is a
    # dependency, so the few lines of PNG encoding are done here with zlib.
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    qr.add_data(text)
    qr.make(fit=True)
    png = _png(qr.get_matrix(), scale)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
