// 장바구니 화면 로직

const STORAGE_KEY = "cart:v2";

/**
 * 장바구니에 담긴 상품들의 가격과 수량으로 총액을 계산한다.
 */
export function calculateCartTotal(items) {
  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

/**
 * 같은 상품이 이미 있으면 수량만 늘리고, 없으면 새로 담는다.
 */
export function addToCart(items, product, quantity = 1) {
  const found = items.find((item) => item.sku === product.sku);
  if (found) {
    found.quantity += quantity;
    return items;
  }
  return [...items, { sku: product.sku, name: product.name, price: product.price, quantity }];
}

/**
 * 장바구니 내용을 브라우저 로컬 스토리지에 저장해 새로고침 후에도 유지한다.
 */
export function saveCart(items) {
  window.localStorage.setItem(STORAGE_KEY, JSON.stringify(items));
}

/**
 * 로컬 스토리지에 저장된 장바구니를 불러온다. 형식이 깨졌으면 빈 장바구니.
 */
export function loadCart() {
  try {
    return JSON.parse(window.localStorage.getItem(STORAGE_KEY)) ?? [];
  } catch (error) {
    return [];
  }
}

/**
 * 금액을 천 단위 쉼표와 '원'을 붙인 한국식 표기로 바꾼다.
 */
export function formatWon(amount) {
  return `${amount.toLocaleString("ko-KR")}원`;
}

/**
 * 검색창 입력이 멈춘 뒤에만 요청이 나가도록 호출을 지연시킨다.
 */
export function debounce(fn, wait = 300) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
