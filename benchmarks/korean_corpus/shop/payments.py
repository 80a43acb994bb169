"""PG 결제 승인, 환불, 웹훅 검증."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

PG_URL = "https://api.pg.example.com/v1"


class PaymentError(Exception):
    pass


def approve_payment(order_no: str, amount: int, card_token: str, api_key: str) -> dict:
    """PG사에 카드 결제 승인을 요청하고 승인 번호가 담긴 응답을 돌려준다."""
    response = requests.post(f"{PG_URL}/payments", json={"orderNo": order_no, "amount": amount,
                                                          "cardToken": card_token},
                             headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    if response.status_code != 200:
        raise PaymentError(response.text)
    return response.json()


def refund_payment(payment_id: str, amount: int, api_key: str, reason: str = "") -> dict:
    """승인된 결제를 전액 또는 부분 환불한다."""
    response = requests.post(f"{PG_URL}/payments/{payment_id}/cancel", json={"amount": amount, "reason": reason},
                             headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def verify_webhook_signature(body: bytes, signature: str, secret: str) -> bool:
    """PG사 웹훅 요청 본문의 HMAC 서명이 맞는지 확인해 위조된 통지를 막는다."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def handle_payment_webhook(body: bytes, signature: str, secret: str, orders) -> str:
    """결제 완료 통지를 받아 해당 주문을 결제 완료 상태로 바꾼다."""
    if not verify_webhook_signature(body, signature, secret):
        raise PaymentError("bad signature")
    event = json.loads(body)
    order = orders.get(event["orderNo"])
    if event["status"] == "DONE" and order.status == "PENDING":
        order.status = "PAID"
        orders.save(order)
    return order.status


def retry_with_backoff(call, attempts: int = 3, base_delay: float = 0.5):
    """네트워크 오류가 나면 점점 간격을 늘려 가며 PG 호출을 다시 시도한다."""
    for attempt in range(attempts):
        try:
            return call()
        except requests.ConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay * 2 ** attempt)
    return None


def split_vat(amount: int) -> tuple[int, int]:
    """결제 금액을 공급가액과 부가세로 나눈다(부가세 10%)."""
    supply = round(amount / 1.1)
    return supply, amount - supply
