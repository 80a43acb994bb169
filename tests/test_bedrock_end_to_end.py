"""`ragcode index` and `ragcode ask` with RAGCODE_LLM=bedrock, as real processes against the stand-in Bedrock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.bedrock_standin import BedrockStandin, RegionConfig, standin_summary

SOURCE = '''def apply_coupon(price: int, rate: float) -> int:
    """쿠폰 할인을 적용한다."""
    return int(price * (1 - rate))


def ship_order(order_id: str) -> None:
    """주문을 배송 대기열에 넣는다."""
    QUEUE.append(order_id)


class Ledger:
    def record(self, amount: int) -> None:
        self.entries.append(amount)
'''


def ragcode(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def test_index_and_ask_with_bedrock(tmp_path, make_repo):
    repo = make_repo("shop")
    repo.write("shop/orders.py", SOURCE)
    repo.commit()
    regions = {"us-east-1": RegionConfig(latency=0.01), "ap-northeast-2": RegionConfig(latency=0.01, limit=1),
               "eu-west-1": RegionConfig(down=True)}
    with BedrockStandin(regions) as standin:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "RAGCODE_HOME": str(tmp_path / "home"), "RAGCODE_LLM": "bedrock",
            "RAGCODE_BEDROCK_REGIONS": ",".join(regions), "RAGCODE_BEDROCK_COOLDOWN": "30",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": standin.url, "AWS_ACCESS_KEY_ID": "AKIDSTANDIN",
            "AWS_SECRET_ACCESS_KEY": "standin-secret", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "RAGCODE_MIN_SCORE": "0",
        }
        indexed = ragcode("index", str(repo.path), "--repo", "acme/shop", "--json", env=env, cwd=tmp_path)
        assert indexed.returncode == 0, indexed.stderr
        report = json.loads(indexed.stdout)
        functions = ["<module>", "apply_coupon", "ship_order", "Ledger.record"]
        assert report["summaries_generated"] == report["functions_total"] == len(functions)
        assert report["functions_failed"] == [] and report["llm"].startswith("bedrock:")
        assert sorted(standin.summarized()) == sorted(functions), "one call per function, none lost"
        calls = {region: figures["calls"] for region, figures in report["usage"].items()}
        assert sum(calls.values()) >= len(functions) and calls.get("eu-west-1", 0) <= 2
        assert report["usage"]["us-east-1"]["input_tokens"] > 0

        searched = ragcode("search", "쿠폰 할인", "--repo", "acme/shop", "--json", env=env, cwd=tmp_path)
        best = json.loads(searched.stdout)["results"][0]
        assert best["name"] == "apply_coupon" and best["summary"] == standin_summary("apply_coupon", True)

        asked = ragcode("ask", "쿠폰 할인 함수를 만들어 줘", "--repo", "acme/shop", "--json", env=env, cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        payload = json.loads(asked.stdout)
        assert payload["llm"].startswith("bedrock:")
        assert "```python\ndef generated():\n    return 42\n```" in payload["answer_markdown"]
        assert payload["references"] and "shop/orders.py" in payload["answer_markdown"]
        assert standin.errors == [], "every request matched the Bedrock service model"
