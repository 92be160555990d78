"""What a card button does: one enum for the payloads of every surface (Telegram callback data, Zalo commands
and one-time tokens, the web console's action links); the stored values are these strings."""

from __future__ import annotations

import enum
from typing import Final


class ButtonAction(enum.StrEnum):
    """Every action a card or notice button can carry; a payload naming anything else is refused."""

    APPROVE = "approve"
    REJECT = "reject"
    ASK_INFO = "ask_info"
    PROVISION = "provision"
    APPROVE_CONFIRM = "approve_confirm"  # the second tap of "Hợp lệ" over a difference from the registry
    KEEP_ACCOUNT = "keep_account"  # keep a deletion's account during its grace period; the argument is the row
    PICK_REJECT = "pick_reject"
    PICK_ASK_INFO = "pick_ask_info"
    TYPE_REJECT = "type_reject"
    TYPE_ASK_INFO = "type_ask_info"
    BACK = "back"
    PAGE = "page"
    ROWS = "rows"  # a link button: the request's rows as CSV from the web console
    SEND_CONFIRM = "send_confirm"  # mail the sender confirmation link (an unverified sender; core/intake/confirm.py)
    REASSIGN_PICK = "reassign_pick"
    REASSIGN = "reassign"
    NOOP = "noop"
    # School records: the target is a class, a return or a credential id; the argument a stage.
    REC_SIGN = "rec_sign"
    REC_REMIND = "rec_remind"
    REC_RETURN_OK = "rec_return_ok"
    REC_RETURN_NO = "rec_return_no"
    REC_CONFIRM = "rec_confirm"
    REC_CRED_OK = "rec_cred_ok"
    REC_CRED_NO = "rec_cred_no"
    REC_LIST = "rec_list"
    REC_REPORT = "rec_report"


RECORD_ACTIONS: Final = frozenset(a for a in ButtonAction if a.value.startswith("rec_"))
# Buttons that only move around a card (or do nothing): a card with none but these asks nothing of anyone.
NAVIGATION: Final = frozenset({ButtonAction.PAGE, ButtonAction.BACK, ButtonAction.NOOP, ButtonAction.ROWS})
