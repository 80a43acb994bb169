"""배송비 계산, 송장 등록, 배송 추적."""

from __future__ import annotations

import requests

FREE_SHIPPING_OVER = 50_000
ISLAND_PREFIXES = ("63", "52", "40")  # 제주, 도서 지역 우편번호 앞자리


def shipping_fee(subtotal: int, zipcode: str) -> int:
    """주문 금액과 우편번호로 배송비를 정한다. 5만 원 이상은 무료, 제주·도서 산간은 추가 요금."""
    fee = 0 if subtotal >= FREE_SHIPPING_OVER else 3000
    if zipcode.startswith(ISLAND_PREFIXES):
        fee += 3000
    return fee


def register_invoice(order_no: str, courier: str, invoice_no: str, shipments) -> None:
    """택배사와 운송장 번호를 주문에 연결해 발송 처리한다."""
    if not invoice_no.isdigit():
        raise ValueError(invoice_no)
    shipments.insert(order_no=order_no, courier=courier, invoice_no=invoice_no, status="SHIPPED")


def track_parcel(courier: str, invoice_no: str, api_key: str) -> list[dict]:
    """택배사 API로 운송장의 현재 위치와 배송 단계를 조회한다."""
    response = requests.get(f"https://tracker.example.com/{courier}/{invoice_no}",
                            headers={"X-Api-Key": api_key}, timeout=5)
    response.raise_for_status()
    return response.json()["progresses"]


def estimate_arrival(ordered_weekday: int, zipcode: str) -> int:
    """주문 요일과 지역을 보고 도착까지 걸리는 영업일 수를 예상한다."""
    days = 1 if ordered_weekday < 4 else 3 - (ordered_weekday - 4)
    return days + (2 if zipcode.startswith(ISLAND_PREFIXES) else 0)


def normalize_address(address: str) -> str:
    """주소 문자열의 공백과 괄호 표기를 정리해 한 가지 형식으로 맞춘다."""
    cleaned = " ".join(address.replace("(", " (").split())
    return cleaned.replace(" ( ", " (")
