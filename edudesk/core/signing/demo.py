"""`edudesk records demo`: a realistic demo class — 40 students, 12 subject teachers (one teaching two
subjects), a homeroom teacher who also teaches, the principal — with Vietnamese names, subjects of the 2018
programme, marks and comments, deterministic for a given seed."""

from __future__ import annotations

import random

from edudesk.core.signing.pdfs import RecordContent, SubjectScore, record_pdf
from edudesk.core.signing.roster import ClassRow, Roster, TeacherRow

YEAR = "2025-2026"
CLASS = "10A1"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
          "Dương", "Lý"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Khánh", "Bảo", "Phương"]
MIDDLE_M = ["Văn", "Đức", "Minh", "Quốc", "Hữu", "Gia", "Hoàng", "Thành"]
GIVEN_F = ["An", "Bích", "Chi", "Diệp", "Giang", "Hà", "Hạnh", "Hương", "Lan", "Linh", "Mai", "Ngân", "Nhung",
           "Oanh", "Phượng", "Quyên", "Thảo", "Trang", "Uyên", "Yến"]
GIVEN_M = ["Anh", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Huy", "Khoa", "Khôi", "Lâm", "Long", "Nam",
           "Nghĩa", "Phúc", "Quân", "Sơn", "Tâm", "Thắng", "Việt"]
# (teacher code, subjects): GV01 teaches Toán and Tin học and signs once for both; GV02 is the homeroom teacher.
ASSIGNMENT = [("GV01", ["Toán", "Tin học"]), ("GV02", ["Ngữ văn"]), ("GV03", ["Tiếng Anh"]), ("GV04", ["Lịch sử"]),
              ("GV05", ["Vật lí"]), ("GV06", ["Hoá học"]), ("GV07", ["Sinh học"]), ("GV08", ["Địa lí"]),
              ("GV09", ["Giáo dục kinh tế và pháp luật"]), ("GV10", ["Công nghệ"]),
              ("GV11", ["Giáo dục thể chất"]), ("GV12", ["Giáo dục quốc phòng và an ninh"])]
PRINCIPAL = "BGH01"
COMMENTS = ["Chăm chỉ, tiến bộ rõ trong học kì II.", "Có năng lực tự học tốt.", "Cần cố gắng hơn ở phần vận dụng.",
            "Tích cực phát biểu xây dựng bài.", "Hoàn thành tốt nhiệm vụ học tập."]


def _name(rng: random.Random, female: bool) -> str:
    middle, given = (MIDDLE_F, GIVEN_F) if female else (MIDDLE_M, GIVEN_M)
    return f"{rng.choice(FAMILY)} {rng.choice(middle)} {rng.choice(given)}"


def demo_roster(*, students: int = 40, seed: int = 2025, email_domain: str = "truong-demo.edu.vn",
                school: str = "") -> Roster:
    """The demo roster: teachers with institutional e-mail addresses, one class and its students. `school`:
    the configured one (recordtext.school_name); empty, the import fills it in."""
    rng = random.Random(seed)
    teachers: dict[str, TeacherRow] = {}
    used: set[str] = set()
    for code, _ in [*ASSIGNMENT, (PRINCIPAL, [])]:
        name = _name(rng, rng.random() < 0.6)
        while name in used:
            name = _name(rng, rng.random() < 0.6)
        used.add(name)
        teachers[code] = TeacherRow(code, name, f"{code.lower()}@{email_domain}")
    row = ClassRow(YEAR, CLASS, school, "GV02", subjects={code: list(subj) for code, subj in ASSIGNMENT},
                   leaders=[PRINCIPAL], principal=PRINCIPAL)
    for i in range(1, students + 1):
        female = rng.random() < 0.5
        birth = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2010"
        row.students.append((f"HS{i:03d}", _name(rng, female), birth))
    return Roster(teachers, {CLASS: row})


def _mark(rng: random.Random) -> str:
    return f"{rng.uniform(5.0, 9.9):.1f}".replace(".", ",")


def demo_pdf(row: ClassRow, student: tuple[str, str, str], roster: Roster) -> bytes:
    """The exported record of one demo student (marks drawn from the student code, so stable)."""
    rng = random.Random(student[0])
    scores = []
    for code, subjects in row.subjects.items():
        for subject in subjects:
            if subject in ("Giáo dục thể chất", "Giáo dục quốc phòng và an ninh"):
                scores.append(SubjectScore(subject, roster.teachers[code].name, "Đ", "Đ", "Đạt"))
            else:
                hk1, hk2 = _mark(rng), _mark(rng)
                year = f"{(float(hk1.replace(',', '.')) + 2 * float(hk2.replace(',', '.'))) / 3:.1f}".replace(".", ",")
                scores.append(SubjectScore(subject, roster.teachers[code].name, hk1, hk2, year,
                                           rng.choice(COMMENTS)))
    content = RecordContent(
        school=row.school, year=row.year, class_name=row.name, student_code=student[0], student_name=student[1],
        birth_date=student[2], gender="Nữ" if student[1].split()[-1] in GIVEN_F else "Nam",
        homeroom=roster.teachers[row.homeroom].name,
        scores=tuple(scores), conduct=rng.choice(["Tốt", "Tốt", "Khá"]), academic=rng.choice(["Tốt", "Khá", "Đạt"]),
        homeroom_comment=rng.choice(["Ngoan, lễ phép, có ý thức tập thể tốt.",
                                     "Tích cực tham gia các hoạt động của lớp.", "Cần mạnh dạn hơn trong học tập."]))
    return record_pdf(content)
