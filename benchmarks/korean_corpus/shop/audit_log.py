"""감사 로그와 개인정보 마스킹."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

logger = logging.getLogger("audit")
_SECRETS = re.compile(r'("?(?:password|card_number|token)"?\s*[:=]\s*)"?[^",\s]+"?', re.IGNORECASE)


def write_audit_log(actor: str, action: str, target: str, detail: dict) -> None:
    """누가 언제 어떤 관리 작업을 했는지 JSON 한 줄로 감사 로그에 남긴다."""
    entry = {"at": datetime.now(timezone.utc).isoformat(), "actor": actor, "action": action, "target": target,
             "detail": detail}
    logger.info(json.dumps(entry, ensure_ascii=False))


def redact_secrets(text: str) -> str:
    """로그에 찍히기 전에 비밀번호, 카드 번호, 토큰 값을 가린다."""
    return _SECRETS.sub(r'\1"***"', text)


def parse_access_log(line: str) -> dict | None:
    """nginx 접근 로그 한 줄을 IP, 시각, 요청, 상태 코드로 나눈다."""
    match = re.match(r'(\S+) \S+ \S+ \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+)', line)
    if not match:
        return None
    ip, when, request, status, size = match.groups()
    return {"ip": ip, "time": when, "request": request, "status": int(status), "bytes": int(size)}


def count_errors_per_hour(lines: list[str]) -> dict[str, int]:
    """접근 로그에서 5xx 응답이 시간대별로 몇 번 났는지 센다."""
    counts: dict[str, int] = {}
    for line in lines:
        entry = parse_access_log(line)
        if entry and entry["status"] >= 500:
            hour = entry["time"][:14]
            counts[hour] = counts.get(hour, 0) + 1
    return counts
