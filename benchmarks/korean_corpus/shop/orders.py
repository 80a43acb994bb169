"""주문 생성, 조회, 취소와 주문 상태 변경."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shop.inventory import release_stock, reserve_stock

CANCELLABLE = {"PENDING", "PAID"}


@dataclass
class OrderLine:
    sku: str
    quantity: int
    unit_price: int


@dataclass
class Order:
    member_id: int
    lines: list[OrderLine]
    status: str = "PENDING"
    order_no: str = field(default_factory=lambda: uuid.uuid4().hex[:12].upper())
    created_at: datetime = field(default_factory=datetime.now)

    def subtotal(self) -> int:
        """주문에 담긴 모든 상품의 단가와 수량을 곱해 합산한 금액을 구한다."""
        return sum(line.unit_price * line.quantity for line in self.lines)

    def can_cancel(self) -> bool:
        """결제 대기 또는 결제 완료 상태일 때만 주문 취소를 허용한다."""
        return self.status in CANCELLABLE


def create_order(member_id: int, lines: list[OrderLine], repository) -> Order:
    """회원의 주문서를 만들고 재고를 선점한 뒤 저장한다. 재고가 모자라면 예외를 던진다."""
    if not lines:
        raise ValueError("empty order")
    for line in lines:
        reserve_stock(line.sku, line.quantity)
    order = Order(member_id=member_id, lines=lines)
    repository.save(order)
    return order


def cancel_order(order: Order, repository, reason: str) -> Order:
    """주문을 취소하고 선점했던 재고를 되돌린다. 취소 사유는 이력에 남긴다."""
    if not order.can_cancel():
        raise PermissionError(order.status)
    for line in order.lines:
        release_stock(line.sku, line.quantity)
    order.status = "CANCELLED"
    repository.save(order)
    repository.append_history(order.order_no, "CANCELLED", reason)
    return order


def find_orders_by_member(repository, member_id: int, page: int = 1, size: int = 20) -> list[Order]:
    """회원 번호로 주문 내역을 최신순으로 페이지 단위 조회한다."""
    offset = (page - 1) * size
    return repository.query("member_id = ? ORDER BY created_at DESC LIMIT ? OFFSET ?", member_id, size, offset)


def expire_unpaid_orders(repository, now: datetime, timeout_minutes: int = 30) -> int:
    """결제 기한이 지나도록 입금되지 않은 주문을 자동으로 만료 처리한다."""
    deadline = now - timedelta(minutes=timeout_minutes)
    expired = 0
    for order in repository.query("status = 'PENDING' AND created_at < ?", deadline):
        for line in order.lines:
            release_stock(line.sku, line.quantity)
        order.status = "EXPIRED"
        repository.save(order)
        expired += 1
    return expired


def change_status(order: Order, new_status: str, repository) -> None:
    """주문 상태를 바꾸고 변경 이력을 기록한다. 허용되지 않은 전이는 거부한다."""
    allowed = {"PENDING": {"PAID", "CANCELLED", "EXPIRED"}, "PAID": {"SHIPPED", "CANCELLED"},
               "SHIPPED": {"DELIVERED"}}
    if new_status not in allowed.get(order.status, set()):
        raise ValueError(f"{order.status} -> {new_status}")
    repository.append_history(order.order_no, new_status, "")
    order.status = new_status
    repository.save(order)
