"""Search latency at 20k+ functions with the models loaded.

Run: .venv/bin/python benchmarks/bench_search.py
Targets: p50 <= 50 ms, p95 <= 150 ms per query (embedding, lexical and vector search, re-ranking).
"""

from __future__ import annotations

import statistics
import time

from corpus import REPO, ensure_indexed

from bot.commands.retrieve import retrieve

QUERIES = [
    "parse an HTTP header into a dictionary", "read a configuration file", "retry a request after a timeout",
    "convert a timestamp to a datetime", "validate the JSON schema of a document", "compute the sha256 of a file",
    "split a path into its parts", "encode a string as base64", "open a socket connection", "sort items by key",
    "serialize an object to json", "format a number with thousands separators", "check if a file exists",
    "create a temporary directory", "merge two dictionaries recursively", "escape html characters",
    "load a private key from pem", "compare two version strings", "download a file over https",
    "paginate results from an api", "파일을 읽어서 줄 단위로 나누는 함수", "HTTP 요청 헤더를 파싱하는 코드",
    "설정 파일을 불러오는 함수", "재시도 로직이 있는 요청", "날짜 문자열을 datetime으로 변환",
    "JSON 스키마 검증", "디렉터리를 재귀적으로 순회", "문자열을 base64로 인코딩", "토큰이 만료되었는지 확인",
    "로그 메시지 포맷팅", "압축 파일 풀기", "정규식으로 이메일 주소 검사", "캐시에서 값을 가져오는 메서드",
    "예외가 발생하면 다시 시도", "서명 검증", "진행 상황 표시줄 업데이트", "환경 변수 읽기", "큐에 작업 넣기",
    "데이터프레임 열 이름 변경", "배열의 평균 계산",
]
ROUNDS = 3


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    """Print the figures."""
    runtime, _, _ = ensure_indexed(20_000)
    functions = runtime.store.branch_state(REPO.id, "main").functions
    runtime.warm_up()
    retrieve(runtime, REPO.id, "main", "준비 warm-up query", min_score=0.0)
    latencies = []
    for _ in range(ROUNDS):
        for query in QUERIES:
            started = time.perf_counter()
            retrieve(runtime, REPO.id, "main", query, min_score=0.0)
            latencies.append((time.perf_counter() - started) * 1000)
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"{functions} documents, {len(latencies)} queries ({len(QUERIES)} distinct, Korean and English)")
    print(f"search latency p50 {p50:.1f} ms (target <= 50: {'met' if p50 <= 50 else 'NOT met'}), "
          f"p95 {p95:.1f} ms (target <= 150: {'met' if p95 <= 150 else 'NOT met'}), max {max(latencies):.1f} ms")
    runtime.close()


if __name__ == "__main__":
    main()
