"""회원 가입, 로그인, 비밀번호 관리."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_login_failures: dict[str, list[float]] = {}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """비밀번호를 솔트와 함께 PBKDF2로 해시해 저장용 문자열로 만든다."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 200_000)
    return f"{salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """입력한 비밀번호가 저장된 해시와 일치하는지 검사한다."""
    salt, _ = stored.split("$", 1)
    return secrets.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


def register_member(email: str, password: str, nickname: str, members) -> int:
    """새 회원을 가입시킨다. 이메일 형식과 중복을 검사하고 회원 번호를 돌려준다."""
    if not EMAIL.match(email):
        raise ValueError("invalid email")
    if members.exists(email=email):
        raise ValueError("duplicate email")
    if len(password) < 8:
        raise ValueError("weak password")
    return members.insert(email=email, password=hash_password(password), nickname=nickname)


def login(email: str, password: str, members, sessions) -> str:
    """이메일과 비밀번호로 로그인하고 세션 토큰을 발급한다. 5회 연속 실패하면 10분간 잠근다."""
    recent = [t for t in _login_failures.get(email, []) if time.time() - t < 600]
    if len(recent) >= 5:
        raise PermissionError("locked")
    member = members.get(email=email)
    if member is None or not check_password(password, member.password):
        _login_failures[email] = [*recent, time.time()]
        raise PermissionError("bad credentials")
    _login_failures.pop(email, None)
    return sessions.issue(member.id)


def send_password_reset(email: str, members, mailer, base_url: str) -> None:
    """비밀번호를 잊은 회원에게 재설정 링크가 담긴 메일을 보낸다. 링크는 30분 뒤 만료된다."""
    member = members.get(email=email)
    if member is None:
        return
    token = secrets.token_urlsafe(32)
    members.save_reset_token(member.id, token, expires_in=1800)
    mailer.send(email, "비밀번호 재설정", f"{base_url}/reset?token={token}")


def withdraw_member(member_id: int, members, orders) -> None:
    """회원 탈퇴를 처리한다. 진행 중인 주문이 있으면 거부하고, 개인정보는 비식별화한다."""
    if orders.exists(member_id=member_id, status__in=("PENDING", "PAID", "SHIPPED")):
        raise PermissionError("open orders")
    members.update(member_id, email=f"deleted-{member_id}", nickname="탈퇴회원", phone=None, status="WITHDRAWN")


def mask_phone_number(phone: str) -> str:
    """휴대폰 번호 가운데 자리를 별표로 가려 화면에 보여 줄 형태로 만든다."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 10:
        return phone
    return f"{digits[:3]}-****-{digits[-4:]}"


def grade_for(total_spent: int) -> str:
    """누적 구매 금액에 따라 회원 등급(브론즈, 실버, 골드, VIP)을 정한다."""
    for limit, grade in ((1_000_000, "VIP"), (500_000, "GOLD"), (100_000, "SILVER")):
        if total_spent >= limit:
            return grade
    return "BRONZE"
