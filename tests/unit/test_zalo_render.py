"""Zalo's plain text of at most 2,000 characters: Telegram HTML made plain, long cards cut at a line with
every action kept, answers split at lines, and a card's change as a short update."""

from __future__ import annotations

from edudesk.bot.zalo.render import LIMIT, fit, plain, split
from edudesk.core.chats.text import update_line
from edudesk.core.ports import Button, Card


def test_plain_keeps_the_words_and_the_link_addresses() -> None:
    text = 'YC-12 · <b>Cấp tài khoản</b> &amp; <i>mật khẩu</i>\n<a href="https://x.vn/a">Tải danh sách</a>'
    assert plain(text) == "YC-12 · Cấp tài khoản & mật khẩu\nTải danh sách (https://x.vn/a)"
    assert plain("&lt;script&gt;") == "<script>"  # escaped text from a mail stays text


def test_a_long_card_keeps_every_action_and_says_where_the_rest_is() -> None:
    body = "\n".join(f"• Sinh viên số {i}: Nguyễn Văn Hùng — ✓ mã số, họ tên, ngày sinh" for i in range(200))
    tail = "Hợp lệ: gửi /duyet 12 hoặc mở https://hd.vn/a/abc\nTừ chối: gửi /tuchoi 12 <lý do>"
    text = fit(body, tail, "https://hd.vn")
    assert len(text) <= LIMIT
    assert text.endswith(tail)
    assert "… (còn nữa: xem trên web console https://hd.vn)" in text
    kept = [line for line in text.splitlines() if line.startswith("• ")]
    assert kept and all(line in body.splitlines() for line in kept)  # cut at a line, never mid-line
    assert fit("ngắn", tail, "") == f"ngắn\n\n{tail}"


def test_split_cuts_at_lines_and_never_loses_text() -> None:
    lines = [f"Dòng {i}: " + "chữ " * 30 for i in range(100)]
    parts = split("\n".join(lines))
    assert all(len(p) <= LIMIT for p in parts) and len(parts) > 1
    assert "\n".join(parts).splitlines() == lines
    huge = "x" * 4500
    assert [len(p) for p in split(huge)] == [2000, 2000, 500]


def test_update_line_names_the_heading_state_and_newest_event() -> None:
    card = Card("YC-7 · Cấp lại mật khẩu\nNgười gửi: An\nTrạng thái: Đã duyệt\n\nHợp lệ — Lê Văn Phòng, 09:10",
                ((Button("Xem", "page", 7),),))
    assert update_line(card) == "YC-7 · Cấp lại mật khẩu\nTrạng thái: Đã duyệt\nHợp lệ — Lê Văn Phòng, 09:10"
