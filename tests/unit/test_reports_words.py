"""The console's /reports page takes its words from the words catalogues (`reports.label.*`), not from a table
of its own."""

from __future__ import annotations

import inspect
import re

from edudesk.bot.web import reports_view
from edudesk.bot.web.reports_view import PAGE_WORDS, page_words
from edudesk.core.words import words

VIETNAMESE = re.compile(r"[àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ]", re.IGNORECASE)


def test_the_reports_page_words_are_the_catalogues_in_each_language() -> None:
    for lang in ("vi", "en"):
        assert set(words(lang).group("reports.label")) == set(PAGE_WORDS), lang
    vi, en = page_words("vi"), page_words("en")
    assert (vi["title"], vi["unit"], vi["scheduled"]) == ("Báo cáo thống kê", "Đơn vị: {unit}", "{who} (tự động)")
    assert (en["title"], en["archive_none"]) == ("Reports", "No report has been archived yet.")
    assert page_words("fr") == vi  # any other language reads Vietnamese


def test_the_reports_view_keeps_no_words_of_its_own() -> None:
    assert not VIETNAMESE.search(inspect.getsource(reports_view)), "Vietnamese text belongs in core/words/vi.py"
