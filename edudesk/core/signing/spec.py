"""What every signer agrees on: the signature fields of a record, their order and locks, and the
pyHanko signature metadata of one `SignItem` (so PKCS#12, PKCS#11 and remote signatures look alike)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edudesk.core.ports import SignItem

if TYPE_CHECKING:
    from pyhanko.sign.signers import PdfSignatureMetadata

MD_ALGORITHM = "sha256"
# Room kept for the CMS signature (certificate chain included) instead of pyHanko's dry-run estimate:
# RSA-4096 with a three-certificate chain fits with room to spare; a signer that needs more says so.
BYTES_RESERVED = 16384


class Stage(enum.IntEnum):
    """The stages of a record, in signing order; a stage opens when the one before it is complete."""

    SUBJECT = 1  # subject teachers, in parallel: one signature per teacher for all their subjects
    HOMEROOM = 2
    LEADERSHIP = 3
    ISSUER = 4  # the school's organisation certificate


STAGE_LABELS = {Stage.SUBJECT: "Giáo viên bộ môn", Stage.HOMEROOM: "Giáo viên chủ nhiệm",
                Stage.LEADERSHIP: "Ban giám hiệu", Stage.ISSUER: "Ký phát hành"}


@dataclass(frozen=True)
class FieldSpec:
    """One pre-made signature field of a record: its name, stage and place on the signature page."""

    name: str  # ASCII, unique in the record: "gvbm_<teacher code>", "gvcn", "bgh_<n>", "phat_hanh"
    stage: Stage
    label: str  # printed under the box: "GVBM Toán, Vật lí — Nguyễn Thị B"


def field_name(stage: Stage, code: str = "") -> str:
    """The field name of a signer's role in a record (codes are the roster's ASCII teacher codes)."""
    base = {Stage.SUBJECT: "gvbm", Stage.HOMEROOM: "gvcn", Stage.LEADERSHIP: "bgh", Stage.ISSUER: "phat_hanh"}[stage]
    return f"{base}_{code}" if code else base


def signature_metadata(item: SignItem) -> PdfSignatureMetadata:
    """pyHanko's metadata for an item: PAdES, its own existing field, certification on the first one."""
    from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
    from pyhanko.sign.signers import PdfSignatureMetadata

    return PdfSignatureMetadata(
        field_name=item.field, md_algorithm=MD_ALGORITHM, subfilter=SigSeedSubFilter.PADES,
        certify=item.certify, docmdp_permissions=MDPPerm.FILL_FORMS,
        reason=item.reason or None, location=item.location or None, name=item.signer_name or None,
    )
