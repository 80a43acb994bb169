"""재고 관리."""

from __future__ import annotations

import threading

_stock: dict[str, int] = {}
_reserved: dict[str, int] = {}
_lock = threading.Lock()


class OutOfStock(Exception):
    pass


def reserve_stock(sku: str, quantity: int) -> None:
    """주문 수량만큼 상품 재고를 미리 잡아 둔다. 남은 수량이 부족하면 OutOfStock."""
    with _lock:
        available = _stock.get(sku, 0) - _reserved.get(sku, 0)
        if available < quantity:
            raise OutOfStock(sku)
        _reserved[sku] = _reserved.get(sku, 0) + quantity


def release_stock(sku: str, quantity: int) -> None:
    """잡아 두었던 재고를 풀어 다시 판매 가능하게 한다."""
    with _lock:
        _reserved[sku] = max(0, _reserved.get(sku, 0) - quantity)


def low_stock_items(threshold: int = 5) -> list[str]:
    """남은 수량이 기준치 이하인 상품 코드 목록을 돌려준다. 발주 알림에 쓴다."""
    with _lock:
        return sorted(sku for sku, count in _stock.items() if count - _reserved.get(sku, 0) <= threshold)


def restock(sku: str, quantity: int) -> int:
    """입고된 수량을 재고에 더하고 새 재고 수량을 돌려준다."""
    with _lock:
        _stock[sku] = _stock.get(sku, 0) + quantity
        return _stock[sku]
