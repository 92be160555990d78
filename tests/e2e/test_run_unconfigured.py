"""`edudesk run` on the built-in example school says so once (mail would carry another school's name), and
says nothing once `[institution]` is configured."""

from __future__ import annotations

import pytest

from tests.e2e.test_crash import Service, service  # noqa: F401 - the fixture
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow

WARNING = "chưa cấu hình [institution]"


def test_the_example_school_is_named_in_a_warning_until_the_institution_is_configured(
        service: Service, smtp_sink: SmtpSink) -> None:  # noqa: F811
    service.write_config(concurrency=1, relay_port=smtp_sink.port)
    service.start()
    service.stop()
    log = service.log.read_text(encoding="utf-8", errors="replace")
    assert log.count(WARNING) == 1 and "edudesk init" in log
    with service.config.open("a", encoding="utf-8") as config:
        config.write('[institution]\nname = "Trường THPT Nguyễn Huệ"\nshort_name = "THPT Nguyễn Huệ"\n'
                     'domains = ["thpt-nguyenhue.edu.vn"]\noffice_address = "cntt@thpt-nguyenhue.edu.vn"\n')
    service.log.write_text("", encoding="utf-8")
    service.start()
    service.stop()
    assert WARNING not in service.log.read_text(encoding="utf-8", errors="replace")
