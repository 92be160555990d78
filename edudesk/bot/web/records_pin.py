"""The signing PIN's words on the records pages, Vietnamese and English (the console's other labels live in
bot/web/labels.py)."""

from __future__ import annotations

from edudesk.bot.web.render import Console

PIN_LABELS = {
    "vi": {"pin": "Mã PIN ký", "pin_repeat": "Nhập lại mã PIN", "set_pin": "Đặt mã PIN",
           "pin_hint": "Tệp chứng thư số được lưu trên máy chủ, khoá bằng mã PIN này (từ 6 ký tự). Máy chủ không lưu "
                       "mã PIN: mỗi lần ký Thầy/Cô nhập lại; quên mã PIN thì phải đăng ký lại chứng thư số.",
           "pin_missing": "Chứng thư số này chưa có mã PIN ký nên chưa ký được: hãy đặt mã PIN.",
           "pin_set": "Đã đặt mã PIN ký."},
    "en": {"pin": "Signing PIN", "pin_repeat": "Repeat the PIN", "set_pin": "Set the PIN",
           "pin_hint": "The credential file is kept on the server, locked with this PIN (6 characters or more). The "
                       "server does not keep the PIN: type it each time you sign; a forgotten PIN means registering "
                       "the credential again.",
           "pin_missing": "This credential has no signing PIN yet, so it cannot sign: set a PIN.",
           "pin_set": "Signing PIN set."},
}


def pin_labels(c: Console) -> dict[str, str]:
    """The PIN words in the console's language."""
    return PIN_LABELS["en" if c.t.get("lang") == "en" else "vi"]
