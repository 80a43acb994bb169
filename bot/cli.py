"""The ``ragcode`` command line: index, search, ask, serve, worker, reconcile, status."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import git

from bot import logs
from bot.commands.testcode import MODES
from bot.config import ConfigError, Settings, load_settings
from bot.documents import OVERLAY_PREFIX, BranchState, Repository, is_overlay
from bot.runtime import Runtime
from bot.spend import RunSummary, make_ledger
from bot.store.base import StoreError
from bot.text import analyzer_process

log = logging.getLogger(__name__)

STATUS_RUNS = 10  # runs `ragcode status` lists
PROGRESS_SECONDS = 10.0  # the most often a stage prints a progress line when stderr is not a terminal
_REMOTE = re.compile(r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|[^@/]+@)([^/:]+)[:/](.+?)(?:\.git)?/?$")


class UsageError(Exception):
    """Bad arguments; exit status 2."""


def remote_identity(repository: git.Repo) -> tuple[str | None, str]:
    """``(owner/name, web page URL)`` from the ``origin`` remote, or ``(None, "")`` without one."""
    try:
        url = repository.remotes.origin.url
    except (AttributeError, ValueError):
        return None, ""
    match = _REMOTE.match(url)
    if not match:
        return None, ""
    host, name = match.groups()
    name = name.removeprefix("/")
    return name, f"https://{host}/{name}"


def open_repository(path: str) -> git.Repo:
    """The git repository at ``path``."""
    try:
        return git.Repo(path)
    except git.NoSuchPathError:
        raise UsageError(f"{path}: does not exist") from None
    except git.InvalidGitRepositoryError:
        raise UsageError(f"{path}: not a git repository") from None


def branch_of(repository: git.Repo, ref: str) -> str:
    """The branch name a ref is indexed under: the checked-out branch for HEAD, else the ref itself."""
    if ref == "HEAD":
        try:
            return repository.active_branch.name
        except TypeError:  # detached HEAD
            return "HEAD"
    return ref.removeprefix("refs/heads/")


def find_repository(runtime: Runtime, name: str, repo_id: int | None) -> Repository:
    """The repository ``--repo``/``--repo-id`` name: an indexed one by that id or name, else a new local one."""
    if repo_id is not None:
        states = runtime.store.branch_states(repo_id)
        return Repository(repo_id, name or (states[0].repo if states else f"repository/{repo_id}"),
                          states[0].installation if states else 0)
    ids = runtime.store.repository_ids(name)
    if not ids:
        return Repository.local(name)
    states = runtime.store.branch_states(ids[0])
    return Repository(ids[0], name, states[0].installation if states else 0)


def pick_branch(runtime: Runtime, repo: Repository, branch: str | None) -> str:
    """The branch to search: the one asked for, else the repository's default or most recently indexed."""
    if branch:
        return branch
    states = [state for state in runtime.store.branch_states(repo.id) if not is_overlay(state.branch)]
    if not states:
        raise UsageError(f"{repo.name}: not indexed (run `ragcode index PATH --repo {repo.name}` first)")
    for preferred in ("main", "master"):
        if any(state.branch == preferred for state in states):
            return preferred
    return max(states, key=lambda state: state.indexed_at).branch


class _Bar:
    """Progress per stage on stderr: a bar on a terminal, else one line (``ragcode: summarizing 120/969``)
    when a stage starts, at most every PROGRESS_SECONDS while it runs, and when it ends, for logs."""

    def __init__(self) -> None:
        self._terminal = sys.stderr.isatty()
        self._bars: dict[str, Any] = {}
        self._latest: dict[str, tuple[int, int]] = {}  # stage -> (done, total) last reported by the run
        self._printed: dict[str, tuple[float, int]] = {}  # stage -> (when, done) last printed

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._latest[stage] = (done, total)
        if self._terminal:
            self._draw(stage, done, total)
            return
        printed = self._printed.get(stage)
        now = time.monotonic()
        if printed is None or done >= total or now - printed[0] >= PROGRESS_SECONDS:
            self._line(stage, done, total, now)

    def _draw(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=f"{stage:<11}", unit="", file=sys.stderr,
                                           leave=True, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    def _line(self, stage: str, done: int, total: int, now: float) -> None:
        print(f"ragcode: {stage} {done}/{total}", file=sys.stderr, flush=True)
        self._printed[stage] = (now, done)

    def close(self) -> None:
        """Finish the bars; a stage that stopped short of its total (failures) still gets its last line."""
        for bar in self._bars.values():
            bar.close()
        for stage, (done, total) in self._latest.items():
            printed = self._printed.get(stage)
            if not self._terminal and printed is not None and printed[1] != done:
                self._line(stage, done, total, time.monotonic())


def command_index(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode index``."""
    repository = open_repository(args.path)
    try:
        commit = repository.commit(args.ref).hexsha
    except (git.BadName, ValueError):
        raise UsageError(f"--ref: {args.ref!r} is not a commit of {args.path}") from None
    name, _ = remote_identity(repository)
    repo_name = args.repo or name or f"local/{Path(repository.working_tree_dir or args.path).resolve().name}"
    if args.dry_run:
        return command_dry_run(settings, args, repository, repo_name, commit)
    # the embedded store analyzes Korean summaries as it writes them: Kiwi loads now, in a process of its own
    with analyzer_process() if settings.store == "local" else nullcontext():
        from bot.indexer.pipeline import index_branch
        from bot.repo_config import CONFIG_PATH, load_config

        config = load_config(repository, commit, settings)  # the repository's own .github/ragcode.yml, as on GitHub
        for error in config.errors:
            print(f"ragcode: {CONFIG_PATH}: {error}; the default is used", file=sys.stderr)
        runtime = Runtime(settings)
        bar = _Bar()
        try:
            repo = find_repository(runtime, repo_name, args.repo_id)
            report = index_branch(runtime, repository, repo, branch_of(repository, args.ref), commit,
                                  full=args.full, options=config.options, progress=bar)
        finally:
            bar.close()
            runtime.close()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(f"{report.repo}@{report.branch} {report.commit[:12]}: {report.functions_total} functions "
              f"(+{report.functions_added} ~{report.functions_updated} -{report.functions_removed} "
              f"moved {report.functions_moved}), {report.summaries_generated} summarized, "
              f"{report.summaries_reused} reused, {len(report.functions_failed)} failed, {report.seconds:.1f}s")
        for failed in report.functions_failed:
            print(f"  failed: {failed}")
    return 1 if report.functions_failed else 0


def command_dry_run(settings: Settings, args: argparse.Namespace, repository: git.Repo, name: str, commit: str) -> int:
    """``ragcode index --dry-run``: the plan and its estimate; no model is called and nothing is written."""
    from bot.indexer.dryrun import dry_run, render

    bar = _Bar()
    try:
        estimate = dry_run(settings, repository, name, args.repo_id, branch_of(repository, args.ref), commit,
                           full=args.full, progress=bar)
    finally:
        bar.close()
    print(json.dumps(estimate.to_json(), ensure_ascii=False) if args.json else render(estimate))
    return 0


def _html_url(runtime: Runtime, repo: str) -> str:
    return f"{runtime.settings.github_api_url.replace('api.github.com', 'github.com').split('/api/')[0]}/{repo}" \
        if not repo.startswith("local/") else ""


def command_search(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode search``."""
    if (args.query is None) == (args.queries is None):
        raise UsageError("search: give either QUERY or --queries FILE")
    if args.query is not None:
        _check_query("search", args.query)
    if args.k < 1:
        raise UsageError(f"-k: must be at least 1, not {args.k}")
    from bot.commands.retrieve import hit_json, retrieve

    runtime = Runtime(settings, read_only=True)
    try:
        repo = find_repository(runtime, args.repo, args.repo_id)
        branch = pick_branch(runtime, repo, args.branch)
        state = _indexed_state(runtime, repo, branch)
        html_url = _html_url(runtime, repo.name)
        queries = [{"id": None, "query": args.query}] if args.query is not None else _read_queries(args.queries)
        # Models, Kiwi and the branch's vectors load here, once: took_ms is only the answering of each query.
        runtime.warm_up(generation=False)
        runtime.store.vector_search(repo.id, branch, runtime.embedder.embed_query("warm up"), 1)
        for item in queries:
            started = time.perf_counter()
            hits = retrieve(runtime, repo.id, branch, item["query"], k=args.k, tests=args.tests)
            took_ms = round((time.perf_counter() - started) * 1000, 2)
            results = [hit_json(hit, html_url, state.commit) for hit in hits]
            if args.json:
                payload = {"query": item["query"], "repo": repo.name, "commit": state.commit, "took_ms": took_ms,
                           "complete": state.complete, "results": results}
                if args.queries:
                    payload = {"id": item["id"], **payload}
                print(json.dumps(payload, ensure_ascii=False), flush=True)
            else:
                for number, result in enumerate(results, 1):
                    print(f"{number:2}. {result['score']:.3f} {result['path']}:{result['start_line']}-"
                          f"{result['end_line']} {result['name']}\n    {result['summary'][:160]}")
                if not results:
                    print("no relevant functions")
    finally:
        runtime.close()
    return 0


def _check_query(command: str, query: str) -> None:
    """A blank query is a usage error."""
    if not query.strip():
        raise UsageError(f"{command}: QUERY is blank")


def _indexed_state(runtime: Runtime, repo: Repository, branch: str) -> BranchState:
    """The branch's indexed state, or a usage error saying it is not indexed."""
    state = runtime.store.branch_state(repo.id, branch)
    if state is None:
        raise UsageError(f"{repo.name}@{branch}: not indexed")
    return state


def _read_queries(path: str) -> list[dict[str, Any]]:
    queries = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"--queries: cannot read {path}: {error.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            queries.append({"id": item["id"], "query": str(item["query"])})
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(f"--queries: {path} line {number} is not an object with id and query") from None
        if not queries[-1]["query"].strip():
            raise UsageError(f"--queries: {path} line {number} has a blank query")
    return queries


def command_ask(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode ask``."""
    _check_query("ask", args.query)
    from bot.commands.answer import answer
    from bot.commands.retrieve import hit_json

    runtime = Runtime(settings, read_only=True)
    try:
        repo = find_repository(runtime, args.repo, args.repo_id)
        branch = pick_branch(runtime, repo, args.branch)
        _indexed_state(runtime, repo, branch)
        html_url = _html_url(runtime, repo.name)
        reply = answer(runtime, repo, branch, args.query, html_url=html_url, tests=args.tests)
    finally:
        runtime.close()
    if args.json:
        print(json.dumps({"answer_markdown": reply.markdown, "references": [
            hit_json(hit, html_url, reply.commit) for hit in reply.hits], "llm": reply.llm,
            "related": [hit_json(hit, html_url, reply.commit) for hit in reply.related],
            "ungrounded": reply.ungrounded}, ensure_ascii=False))
    else:
        print_reply(reply.markdown)
    return 0


def print_reply(markdown: str) -> None:
    """The reply exactly as posted on GitHub when stdout is a pipe or a file; readable text on a terminal."""
    if not sys.stdout.isatty():
        print(markdown)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    # hyperlinks=False prints each permalink's address after its text, so every terminal shows it
    Console().print(Markdown(markdown, hyperlinks=False))


def command_status(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode status``."""
    runtime = Runtime(settings, read_only=True)
    try:
        repositories: dict[int, dict[str, Any]] = {}
        for state in runtime.store.all_branch_states():
            entry = repositories.setdefault(state.repo_id, {"repo": state.repo, "repo_id": state.repo_id,
                                                            "installation": state.installation, "branches": {},
                                                            "pull_requests": {}})
            # pull request overlays (their changed files at the head) are listed apart from branches
            part = "pull_requests" if is_overlay(state.branch) else "branches"
            key = state.branch.removeprefix(OVERLAY_PREFIX) if is_overlay(state.branch) else state.branch
            entry[part][key] = {"commit": state.commit, "functions": state.functions, "indexed_at": state.indexed_at,
                                "complete": state.complete}
    finally:
        runtime.close()
    queue, parked = _queue_state(settings)
    runs, feedback, spending = _ledger_state(settings)
    if args.json:
        print(json.dumps({"repositories": list(repositories.values()), "queue": queue, "parked_jobs": parked,
                          "runs": [run.to_json() for run in runs], "feedback": feedback,
                          "spending": [{"installation": number, "month_usd": round(usd, 6)}
                                       for number, usd in sorted(spending.items())]}, ensure_ascii=False))
        return 0
    for entry in repositories.values():
        for branch, info in entry["branches"].items():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["indexed_at"]))
            unfinished = "" if info["complete"] else " (still being completed)"
            print(f"{entry['repo']}@{branch} {info['commit'][:12]} {info['functions']} functions, indexed {when}"
                  f"{unfinished}")
        for number, info in entry["pull_requests"].items():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["indexed_at"]))
            print(f"{entry['repo']} pull request #{number} {info['commit'][:12]} {info['functions']} functions "
                  f"changed, indexed {when}")
    if not repositories:
        print("nothing indexed yet")
    print(f"queue: {queue['queued']} queued, {queue['running']} running, {queue['parked']} parked")
    for job in parked:
        print(f"  parked job {job['id']} ({job['kind']} {job['repo']}, {job['attempts']} attempts): {job['error']}")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started_at))
        print(f"run {when} {run.repo}@{run.branch} {run.commit[:12]} {run.outcome} in {run.seconds:.0f}s: "
              f"+{run.functions_added} ~{run.functions_updated} -{run.functions_removed}, "
              f"{run.summaries_generated} summarized, {run.failures} failed, ${run.cost_usd:.4f}")
    for number, usd in sorted(spending.items()):
        print(f"installation {number}: ${usd:.2f} this month")
    counts = ", ".join(f"{reaction} {count}" for reaction, count in sorted(feedback.items(), key=lambda item: -item[1]))
    print(f"reply feedback: {counts or 'no reactions yet'}")
    return 0


def _queue_state(settings: Settings) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Job counts by state, and the parked jobs with their last error."""
    if settings.queue == "sqlite" and not (settings.home / "queue.sqlite3").exists():
        return {"queued": 0, "running": 0, "parked": 0}, []
    from bot.queue import make_queue

    queue = make_queue(settings)
    try:
        return queue.counts(), queue.parked()
    finally:
        queue.close()


def _ledger_state(settings: Settings) -> tuple[list[RunSummary], dict[str, int], dict[int, float]]:
    """The last runs, the reply feedback and this month's spending, from the shared ledger (nothing when the
    embedded ledger was never written)."""
    if settings.queue == "sqlite" and not (settings.home / "spend.sqlite3").exists():
        return [], {}, {}
    ledger = make_ledger(settings)
    try:
        return ledger.recent_runs(STATUS_RUNS), ledger.feedback_totals(), ledger.month_spending()
    finally:
        ledger.close()


def command_serve(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode serve``."""
    if not settings.github_webhook_secret:
        raise ConfigError("GITHUB_WEBHOOK_SECRET: required by `ragcode serve` (with GITHUB_APP_ID and "
                          "GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH)")
    from bot.webhooks.app import serve

    serve(settings, args.host, args.port, work=not args.no_workers)
    return 0


def command_worker(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode worker``."""
    from bot.webhooks.app import work

    work(settings, args.host, args.port)
    return 0


def command_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """``ragcode reconcile``: one pass, printed."""
    from bot.github.client import GitHubApp, check_app_settings
    from bot.queue import make_queue
    from bot.reconcile import reconcile

    check_app_settings(settings, webhook_secret=False)
    runtime = Runtime(settings)
    queue = make_queue(settings)
    try:
        report = reconcile(GitHubApp(settings), runtime.store, queue, base_url=settings.github_api_url,
                           min_rate=settings.reconcile_min_rate)
    finally:
        queue.close()
        runtime.close()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(f"{report.installations} installations, {report.repositories} repositories, "
              f"{report.branches_checked} branches checked in {report.seconds:.1f}s")
        for item in report.queued:
            print(f"  queued {item['reason']} {item['repo']}@{item['branch']}: "
                  f"{(item['indexed'] or '-')[:12]} -> {(item['head'] or '-')[:12]}")
        for item in report.redelivered:
            print(f"  redelivered {item['event']} delivery {item['guid']} (was HTTP {item['status_code']})")
        for line in report.stopped + report.errors:
            print(f"  {line}")
    return 1 if report.errors else 0


CONFIG_HELP = "settings file (default: ragcode.toml in the data folder, RAGCODE_HOME)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="ragcode", description="Ask your repositories for code, in Korean or English.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    # --config is also accepted after the sub-command; SUPPRESS keeps a sub-command from resetting it to None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common], help="index a git repository (incrementally)")
    index.add_argument("path")
    index.add_argument("--repo", help="OWNER/NAME (default: from the origin remote, else local/<folder>)")
    index.add_argument("--repo-id", type=int, help="the repository's numeric GitHub id (default: the indexed "
                       "repository of that name, else a local id)")
    index.add_argument("--ref", default="HEAD")
    index.add_argument("--full", action="store_true", help="re-plan every file (cached summaries still apply)")
    index.add_argument("--dry-run", action="store_true", help="plan only: functions to summarize, estimated "
                       "calls, tokens, cost and time; no model is called and nothing is written")
    index.add_argument("--json", action="store_true")
    index.set_defaults(run=command_index)

    search = commands.add_parser("search", parents=[common], help="retrieve relevant functions")
    search.add_argument("query", nargs="?")
    search.add_argument("--queries", help="file of JSON lines {id, query}")
    search.add_argument("--repo", required=True)
    search.add_argument("--repo-id", type=int, help="the repository's numeric id, when two share a name")
    search.add_argument("--branch")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--tests", choices=MODES, help="how test code ranks (default: RAGCODE_TESTS, demote)")
    search.add_argument("--json", action="store_true")
    search.set_defaults(run=command_search)

    ask = commands.add_parser("ask", parents=[common], help="retrieve and generate an answer")
    ask.add_argument("query")
    ask.add_argument("--repo", required=True)
    ask.add_argument("--repo-id", type=int, help="the repository's numeric id, when two share a name")
    ask.add_argument("--branch")
    ask.add_argument("--tests", choices=MODES, help="how test code ranks (default: RAGCODE_TESTS, demote)")
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(run=command_ask)

    serve = commands.add_parser("serve", parents=[common], help="run the GitHub App webhook service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-workers", action="store_true",
                       help="only receive and enqueue (workers run elsewhere: `ragcode worker`)")
    serve.set_defaults(run=command_serve)

    worker = commands.add_parser("worker", parents=[common], help="run workers only, with /healthz and /metrics on --port")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int, default=8001)
    worker.set_defaults(run=command_worker)

    reconcile = commands.add_parser("reconcile", parents=[common], help="queue runs for stale branches, redeliver failed deliveries")
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(run=command_reconcile)

    status = commands.add_parser("status", parents=[common], help="what is indexed, and the job queue")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=command_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 usage or configuration, 1 other failures)."""
    args = build_parser().parse_args(argv)
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    try:
        settings = load_settings(toml_path=Path(args.config) if args.config else None)
        status: int = args.run(settings, args)
        return status
    except (ConfigError, UsageError) as error:
        print(f"ragcode: {error}", file=sys.stderr)
        return 2
    except StoreError as error:
        print(f"ragcode: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ragcode: interrupted; the next run picks up where this one stopped", file=sys.stderr)
        return 130
    except Exception as error:  # one clear line; the trace goes to the log
        log.exception("command failed")
        print(f"ragcode: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
