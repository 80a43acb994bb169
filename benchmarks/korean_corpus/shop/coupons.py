"""쿠폰 발급과 할인 적용."""

from __future__ import annotations

import random
import string
from datetime import date


def generate_coupon_code(length: int = 12) -> str:
    """헷갈리는 글자(0, O, 1, I)를 뺀 무작위 쿠폰 코드를 만든다."""
    alphabet = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1I")
    return "".join(random.choice(alphabet) for _ in range(length))


def apply_coupon(subtotal: int, coupon: dict, today: date) -> int:
    """쿠폰 조건(최소 주문 금액, 유효 기간)을 확인하고 할인된 결제 금액을 계산한다."""
    if today > coupon["expires_on"] or subtotal < coupon.get("min_amount", 0):
        return subtotal
    if coupon["type"] == "RATE":
        discount = min(subtotal * coupon["rate"] // 100, coupon.get("max_discount", subtotal))
    else:
        discount = coupon["amount"]
    return max(0, subtotal - discount)


def issue_welcome_coupon(member_id: int, coupons) -> str:
    """신규 가입 회원에게 첫 구매 할인 쿠폰을 한 장 지급한다."""
    code = generate_coupon_code()
    coupons.insert(member_id=member_id, code=code, type="AMOUNT", amount=3000, min_amount=20000)
    return code


def redeem_coupon(code: str, member_id: int, coupons) -> dict:
    """쿠폰을 사용 처리한다. 이미 쓴 쿠폰이나 다른 회원의 쿠폰이면 거부한다."""
    coupon = coupons.get(code=code)
    if coupon is None or coupon["member_id"] != member_id:
        raise LookupError(code)
    if coupon["used_at"] is not None:
        raise ValueError("already used")
    coupons.mark_used(code)
    return coupon


def expiring_coupons(coupons, today: date, days: int = 3) -> list[dict]:
    """며칠 안에 유효 기간이 끝나는 미사용 쿠폰을 찾아 만료 안내에 쓴다."""
    return [c for c in coupons.unused() if 0 <= (c["expires_on"] - today).days <= days]
