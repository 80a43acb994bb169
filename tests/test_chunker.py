"""Tests of the function-level chunker: names, kinds, line ranges, module rest, parts and fallbacks."""

from __future__ import annotations

import pytest

from bot.documents import Unit
from bot.indexer.chunker import chunk_file, language_for


def units_by_name(units: list[Unit]) -> dict[tuple[str, int], Unit]:
    """Units keyed by (qualified name, ordinal)."""
    return {(u.name, u.ordinal): u for u in units}


def lines_of(source: str, unit: Unit) -> str:
    """The source lines a unit claims to span."""
    return "\n".join(source.split("\n")[unit.start_line - 1 : unit.end_line])


def summary(units: list[Unit]) -> list[tuple[str, str, int, int]]:
    """(kind, name, start, end) of every unit, in order."""
    return [(u.kind, u.name, u.start_line, u.end_line) for u in units]


PYTHON = '''"""세션 모듈: 한국어 문서 문자열."""
import os

# 기본 제한
LIMIT = 10


class Session(Base):
    """데이터베이스 세션."""

    timeout = 5

    # 이름을 돌려준다
    @property
    def name(self) -> str:
        return "이름"

    async def save(self, force: bool = False) -> None:
        def inner():
            class Local:
                def run(self):
                    return "실행"
            return Local
        return inner


@decorator(option="값")
def outer(a,
          b):
    """바깥 함수."""
    return a + b
'''


def test_python_names_kinds_and_lines() -> None:
    units = chunk_file("pkg/session.py", PYTHON)
    assert summary(units) == [
        ("module", "<module>", 1, 11),
        ("method", "Session.name", 13, 16),
        ("method", "Session.save", 18, 24),
        ("function", "Session.save.<locals>.inner", 19, 23),
        ("method", "Session.save.<locals>.inner.<locals>.Local.run", 21, 22),
        ("function", "outer", 27, 31),
    ]
    assert all(u.language == "python" and u.path == "pkg/session.py" for u in units)
    for unit in units[1:]:
        assert unit.code == lines_of(PYTHON, unit)


def test_python_decorators_comments_and_context() -> None:
    units = units_by_name(chunk_file("session.py", PYTHON))
    name = units["Session.name", 0]
    assert name.code.startswith("    # 이름을 돌려준다\n    @property\n    def name(self) -> str:")
    assert name.context == "class Session(Base):"
    assert units["outer", 0].code.startswith('@decorator(option="값")\ndef outer(a,')
    assert '"""바깥 함수."""' in units["outer", 0].code
    assert units["outer", 0].context == ""
    inner = units["Session.save.<locals>.inner", 0]
    assert inner.context == "class Session(Base):\n    async def save(self, force: bool = False) -> None:"


def test_python_module_unit_holds_everything_outside_functions() -> None:
    module = units_by_name(chunk_file("session.py", PYTHON))["<module>", 0]
    assert module.code == (
        '"""세션 모듈: 한국어 문서 문자열."""\nimport os\n\n# 기본 제한\nLIMIT = 10\n\n\n'
        'class Session(Base):\n    """데이터베이스 세션."""\n\n    timeout = 5'
    )
    assert "def " not in module.code and "@decorator" not in module.code


def test_python_nested_classes_are_qualified() -> None:
    source = "class Outer:\n    class Inner:\n        def method(self):\n            return 1\n"
    units = units_by_name(chunk_file("nested.py", source))
    method = units["Outer.Inner.method", 0]
    assert (method.kind, method.start_line, method.end_line) == ("method", 3, 4)
    assert method.context == "class Outer:\n    class Inner:"
    assert units["<module>", 0].code == "class Outer:\n    class Inner:"


def test_module_unit_is_skipped_when_only_functions() -> None:
    source = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
    assert summary(chunk_file("m.py", source)) == [("function", "a", 1, 2), ("function", "b", 5, 6)]


def test_module_unit_joins_pieces_around_functions() -> None:
    source = "import os\n\ndef a():\n    return 1\n\nX = 1\n"
    module = units_by_name(chunk_file("m.py", source))["<module>", 0]
    assert (module.start_line, module.end_line) == (1, 6)
    assert module.code == "import os\n\nX = 1"


def test_korean_text_does_not_shift_lines() -> None:
    source = (
        "# 한국어 주석이 아주 길게 이어집니다 " + "가나다라마바사" * 40 + "\n"
        'MESSAGE = """여러 줄\n문자열 안의 def 가짜():\n    끝"""\n'
        "\n"
        "def 인사(이름: str) -> str:\n"
        '    return f"안녕하세요, {이름}님 😀"\n'
        "\n"
        "def after():  # 뒤쪽 함수\n"
        "    return '완료'\n"
    )
    units = units_by_name(chunk_file("hello.py", source))
    greet = units["인사", 0]
    assert (greet.start_line, greet.end_line) == (6, 7)
    assert greet.code == 'def 인사(이름: str) -> str:\n    return f"안녕하세요, {이름}님 😀"'
    after = units["after", 0]
    assert (after.start_line, after.end_line) == (9, 10)
    assert after.code == lines_of(source, after)


def test_python_syntax_errors_still_yield_recoverable_functions() -> None:
    source = "import os\n\ndef broken(:\n    pass\n\ndef fine(a):\n    return a\n\nclass K:\n    def ok(self):\n        return 1\n"
    units = units_by_name(chunk_file("broken.py", source))
    assert (units["fine", 0].start_line, units["fine", 0].end_line) == (6, 7)
    assert units["fine", 0].code == "def fine(a):\n    return a"
    assert (units["K.ok", 0].start_line, units["K.ok", 0].end_line) == (10, 11)
    assert units["K.ok", 0].kind == "method"


def test_file_without_functions_is_one_module_unit() -> None:
    source = "\n\nTABLE = {\n    'a': 1,\n}\n\n"
    assert summary(chunk_file("table.py", source)) == [("module", "<module>", 3, 5)]
    assert chunk_file("table.py", source)[0].code == "TABLE = {\n    'a': 1,\n}"


def test_long_function_is_split_into_parts_keeping_the_signature() -> None:
    body = [f"    value_{i} = {i}" for i in range(12)]
    body[5] = ""
    source = "def long_one(a,\n             b):\n" + "\n".join(body) + "\n"
    units = chunk_file("long.py", source, max_unit_lines=5)
    assert summary(units) == [
        ("part", "long_one#1", 1, 5),
        ("part", "long_one#2", 6, 10),
        ("part", "long_one#3", 11, 14),
    ]
    signature = "def long_one(a,\n             b):"
    first, second, third = units
    assert first.code == "\n".join(source.split("\n")[0:5])
    assert second.code == signature + "\n    ...\n" + "\n".join(source.split("\n")[5:10])
    assert third.code.startswith(signature + "\n    ...\n    value_8 = 8")
    assert third.code.endswith("    value_11 = 11")
    assert all(u.context == signature for u in units)
    assert all(u.end_line - u.start_line + 1 <= 5 for u in units)


def test_split_prefers_a_blank_line_in_the_second_half() -> None:
    body = [f"    v{i} = {i}" for i in range(18)]
    body[8] = ""
    source = "def f():\n" + "\n".join(body) + "\n"
    units = chunk_file("f.py", source, max_unit_lines=10)
    assert summary(units) == [("part", "f#1", 1, 9), ("part", "f#2", 11, 19)]
    assert units[0].code.endswith("    v7 = 7")
    assert units[1].code == "def f():\n    ...\n" + "\n".join(body[9:])
    covered = {line for u in units for line in range(u.start_line, u.end_line + 1)}
    assert covered == set(range(1, 20)) - {10}


def test_long_module_unit_is_split_into_parts() -> None:
    source = "\n".join(f"X{i} = {i}" for i in range(25)) + "\n"
    units = chunk_file("consts.py", source, max_unit_lines=10)
    assert summary(units) == [
        ("part", "<module>#1", 1, 9),
        ("part", "<module>#2", 10, 17),
        ("part", "<module>#3", 18, 25),
    ]
    assert units[1].code.startswith("X9 = 9")


def test_a_failing_parse_falls_back_to_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.indexer import chunker

    def explode(*args: object) -> None:
        raise RuntimeError("grammar surprise")

    monkeypatch.setattr(chunker, "_find_definitions", explode)
    units = chunk_file("x.py", "def f():\n    return 1\n")
    assert summary(units) == [("window", "<lines 1-2>", 1, 2)]
    assert units[0].language == "python"


def test_moved_function_keeps_its_hash() -> None:
    first = units_by_name(chunk_file("a.py", "def f():\n    return 1\n"))["f", 0]
    moved = units_by_name(chunk_file("b.py", "import os\n\n\ndef f():\n    return 1\n"))["f", 0]
    assert first.hash == moved.hash and first.start_line != moved.start_line
    assert "b.py" not in moved.code


JAVASCRIPT = """import { x } from "./x.js";

/**
 * 사용자 목록을 가져온다.
 */
export async function fetchUsers(api) {
  return api.get("/users");
}

const double = (n) => n * 2;
const legacy = function () {
  return "옛날";
};
export const handler = async (event) => {
  const helper = () => event.id;
  return helper();
};

class Store extends Base {
  // 클릭 처리
  onClick = () => {
    this.count++;
  };

  get size() {
    return this.items.length;
  }

  set size(value) {
    this.items.length = value;
  }

  static create() {
    return new Store();
  }
}

const api = {
  list() {
    return [];
  },
  remove: (id) => id,
};

Store.prototype.reset = function () {
  this.items = [];
};
"""


def test_javascript_functions_arrows_and_classes() -> None:
    units = chunk_file("src/store.js", JAVASCRIPT)
    assert summary(units) == [
        ("module", "<module>", 1, 43),
        ("function", "fetchUsers", 3, 8),
        ("function", "double", 10, 10),
        ("function", "legacy", 11, 13),
        ("function", "handler", 14, 17),
        ("function", "handler.<locals>.helper", 15, 15),
        ("method", "Store.onClick", 20, 23),
        ("method", "Store.size", 25, 27),
        ("method", "Store.size", 29, 31),
        ("method", "Store.create", 33, 35),
        ("function", "api.list", 39, 41),
        ("function", "api.remove", 42, 42),
        ("function", "Store.reset", 45, 47),
    ]
    units_map = units_by_name(units)
    assert units_map["Store.size", 1].ordinal == 1 and "set size" in units_map["Store.size", 1].code
    assert units_map["fetchUsers", 0].code.startswith("/**\n * 사용자 목록을 가져온다.\n */\nexport async")
    assert units_map["handler", 0].code.startswith("export const handler = async (event) => {")
    assert units_map["Store.onClick", 0].context == "class Store extends Base {"
    assert units_map["Store.onClick", 0].code.startswith("  // 클릭 처리\n  onClick")
    module = units_map["<module>", 0]
    assert "class Store extends Base {" in module.code and "this.count" not in module.code


TYPESCRIPT = """import { Component, Input } from "@angular/core";

/** 카드 컴포넌트 */
@Component({ selector: "app-card" })
export class CardComponent {
  @Input() title = "";

  @HostListener("click")
  onClick(): void {
    console.log("눌림");
  }

  abstract render(): string;
}

export function total(items: number[]): number;
export function total(items: number[], start = 0): number {
  return items.reduce((a, b) => a + b, start);
}

export namespace Util {
  export const id = <T>(x: T): T => x;
}
"""


def test_typescript_decorators_overload_signatures_and_namespaces() -> None:
    units = chunk_file("card.ts", TYPESCRIPT)
    assert language_for("card.ts") == "typescript"
    assert summary(units) == [
        ("module", "<module>", 1, 23),
        ("method", "CardComponent.onClick", 8, 11),
        ("function", "total", 17, 19),
        ("function", "Util.id", 22, 22),
    ]
    on_click = units_by_name(units)["CardComponent.onClick", 0]
    assert on_click.code.startswith('  @HostListener("click")\n  onClick(): void {')
    assert on_click.context == "export class CardComponent {"


def test_tsx_components() -> None:
    source = 'import React from "react";\n\nexport const Card = ({ title }: Props) => {\n  return <div className="card">{title} 카드</div>;\n};\n'
    assert language_for("Card.tsx") == "tsx"
    assert summary(chunk_file("Card.tsx", source)) == [
        ("module", "<module>", 1, 1),
        ("function", "Card", 3, 5),
    ]


GO = """package repo

import "fmt"

// Repo 는 사용자 저장소다.
type Repo struct {
	items map[string]string
}

// Save stores one item.
// 한 건을 저장한다.
func (r *Repo) Save(key, value string) error {
	r.items[key] = value
	return nil
}

func (Repo) Name() string { return "repo" }

func New() *Repo {
	return &Repo{items: map[string]string{}}
}

func (c *Cache[K, V]) Get(key K) V {
	return c.m[key]
}
"""


def test_go_functions_and_receiver_methods() -> None:
    units = chunk_file("repo/repo.go", GO)
    assert summary(units) == [
        ("module", "<module>", 1, 8),
        ("method", "Repo.Save", 10, 15),
        ("method", "Repo.Name", 17, 17),
        ("function", "New", 19, 21),
        ("method", "Cache.Get", 23, 25),
    ]
    save = units_by_name(units)["Repo.Save", 0]
    assert save.code.startswith("// Save stores one item.\n// 한 건을 저장한다.\nfunc (r *Repo) Save")
    assert "type Repo struct {" in units[0].code


RUST = """use std::fmt;

/// 사용자.
#[derive(Debug)]
pub struct User {
    name: String,
}

impl User {
    /// 새 사용자를 만든다.
    pub fn new(name: &str) -> Self {
        User { name: name.to_string() }
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fn quote(s: &str) -> String {
            format!("'{}'", s)
        }
        write!(f, "{}", quote(&self.name))
    }
}

pub trait Greeter {
    fn greet(&self) -> String {
        "안녕".to_string()
    }
    fn name(&self) -> String;
}

#[cfg(test)]
mod tests {
    #[test]
    fn works() {
        assert!(true);
    }
}
"""


def test_rust_impl_trait_impl_and_modules() -> None:
    units = chunk_file("src/user.rs", RUST)
    assert summary(units) == [
        ("module", "<module>", 1, 38),
        ("method", "User.new", 10, 13),
        ("method", "User.fmt", 17, 22),
        ("function", "User.fmt.<locals>.quote", 18, 20),
        ("method", "Greeter.greet", 26, 28),
        ("function", "tests.works", 34, 37),
    ]
    by_name = units_by_name(units)
    assert by_name["User.new", 0].code.startswith("    /// 새 사용자를 만든다.\n    pub fn new")
    assert by_name["User.fmt", 0].context == "impl fmt::Display for User {"
    assert by_name["tests.works", 0].code.startswith("    #[test]\n    fn works() {")
    assert "fn name(&self) -> String;" in units[0].code


JAVA = """package com.example;

import java.util.List;

/**
 * 사용자 서비스.
 */
@Service
public class UserService {
    private final Repo repo;

    /** 생성자. */
    public UserService(Repo repo) {
        this.repo = repo;
    }

    @Override
    public String find(int id) {
        return repo.get(id);
    }

    public String find(String name) {
        return repo.byName(name);
    }

    abstract void reset();

    static class Cache {
        void clear() {
        }
    }
}
"""


def test_java_methods_constructors_overloads_and_nested_classes() -> None:
    units = chunk_file("UserService.java", JAVA)
    assert summary(units) == [
        ("module", "<module>", 1, 32),
        ("method", "UserService.UserService", 12, 15),
        ("method", "UserService.find", 17, 20),
        ("method", "UserService.find", 22, 24),
        ("method", "UserService.Cache.clear", 29, 30),
    ]
    assert [u.ordinal for u in units if u.name == "UserService.find"] == [0, 1]
    by_name = units_by_name(units)
    assert by_name["UserService.find", 0].code.startswith("    @Override\n    public String find(int id)")
    assert "String name" in by_name["UserService.find", 1].code
    assert by_name["UserService.UserService", 0].code.startswith("    /** 생성자. */\n")
    assert "abstract void reset();" in units[0].code


C = """#include <stdio.h>

static int counter = 0;

/* 다음 값을 돌려준다 */
static int *next_value(void) {
    counter++;
    return &counter;
}

int main(int argc, char **argv) {
    printf("%d\\n", *next_value());
    return 0;
}
"""


def test_c_functions() -> None:
    units = chunk_file("main.c", C)
    assert summary(units) == [
        ("module", "<module>", 1, 3),
        ("function", "next_value", 5, 9),
        ("function", "main", 11, 14),
    ]
    assert units[1].code.startswith("/* 다음 값을 돌려준다 */\nstatic int *next_value(void) {")


CPP = """#include <string>

namespace store {

// 저장소
class Repo {
 public:
  Repo() : size_(0) {}
  int size() const { return size_; }
  void save(const std::string& item);

 private:
  int size_;
};

/// 항목을 저장한다.
void Repo::save(const std::string& item) {
  size_++;
}

}  // namespace store

template <typename T>
T max_of(T a, T b) {
  return a > b ? a : b;
}

void Outer::Inner::run() {}
"""


def test_cpp_methods_out_of_line_definitions_and_templates() -> None:
    units = chunk_file("repo.cpp", CPP)
    assert summary(units) == [
        ("module", "<module>", 1, 21),
        ("method", "store.Repo.Repo", 8, 8),
        ("method", "store.Repo.size", 9, 9),
        ("method", "store.Repo.save", 16, 19),
        ("function", "max_of", 23, 26),
        ("method", "Outer.Inner.run", 28, 28),
    ]
    by_name = units_by_name(units)
    assert by_name["store.Repo.size", 0].context == "namespace store {\nclass Repo {"
    assert by_name["max_of", 0].code.startswith("template <typename T>\nT max_of")
    assert "void save(const std::string& item);" in units[0].code


RUBY = """require "json"

module Billing
  # 청구서
  class Invoice < Base
    TAX = 0.1

    # 합계를 계산한다
    def total
      items.sum * (1 + TAX)
    end

    def self.build(attrs)
      new(attrs)
    end
  end
end

def helper
  "도움"
end
"""


def test_ruby_methods_in_classes_and_modules() -> None:
    units = chunk_file("lib/billing.rb", RUBY)
    assert summary(units) == [
        ("module", "<module>", 1, 17),
        ("method", "Billing.Invoice.total", 8, 11),
        ("method", "Billing.Invoice.build", 13, 15),
        ("function", "helper", 19, 21),
    ]
    total = units_by_name(units)["Billing.Invoice.total", 0]
    assert total.code.startswith("    # 합계를 계산한다\n    def total")
    assert total.context == "module Billing\n  class Invoice < Base"


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b.py", "python"),
        ("x.pyi", "python"),
        ("app.jsx", "javascript"),
        ("app.mjs", "javascript"),
        ("app.ts", "typescript"),
        ("app.tsx", "tsx"),
        ("Main.java", "java"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("x.c", "c"),
        ("x.cc", "cpp"),
        ("x.hpp", "cpp"),
        ("x.rb", "ruby"),
        ("Rakefile", "ruby"),
        ("README.md", "text"),
        ("deploy/values.yaml", "text"),
        ("run.sh", "text"),
        ("q.sql", "text"),
        ("App.kt", "text"),
        ("Dockerfile", "text"),
        ("logo.png", None),
        ("data.bin", None),
        ("package-lock.json", None),
        ("noextension", None),
    ],
)
def test_language_for(path: str, language: str | None) -> None:
    assert language_for(path) == language


def test_text_files_are_split_into_windows() -> None:
    source = "".join(f"줄 {i}\n" for i in range(1, 131))
    units = chunk_file("docs/guide.md", source)
    assert summary(units) == [
        ("window", "<lines 1-60>", 1, 60),
        ("window", "<lines 61-120>", 61, 120),
        ("window", "<lines 121-130>", 121, 130),
    ]
    assert units[0].code.split("\n")[0] == "줄 1" and units[2].code.endswith("줄 130")
    assert all(u.language == "text" for u in units)


def test_unknown_extension_still_gets_windows() -> None:
    units = chunk_file("weird.unknownext", "some text\nmore text\n")
    assert summary(units) == [("window", "<lines 1-2>", 1, 2)]
    assert units[0].language == "text"


def test_windows_respect_a_smaller_max_unit_lines() -> None:
    units = chunk_file("notes.txt", "a\nb\nc\nd\ne\n", max_unit_lines=2)
    assert [u.name for u in units] == ["<lines 1-2>", "<lines 3-4>", "<lines 5-5>"]


@pytest.mark.parametrize("path", ["empty.py", "empty.go", "empty.md", "empty.unknownext"])
@pytest.mark.parametrize("source", ["", "\n\n  \n"])
def test_empty_or_blank_file_yields_nothing(path: str, source: str) -> None:
    assert chunk_file(path, source) == []


def test_crlf_line_endings() -> None:
    source = "import os\r\n\r\ndef f():\r\n    return 1\r\n"
    units = units_by_name(chunk_file("crlf.py", source))
    assert units["f", 0].code == "def f():\n    return 1"
    assert (units["f", 0].start_line, units["f", 0].end_line) == (3, 4)


def test_redefinitions_get_ordinals_in_file_order() -> None:
    source = "def f():\n    return 1\n\n\ndef f():\n    return 2\n"
    units = chunk_file("dup.py", source)
    assert [(u.name, u.ordinal, u.start_line) for u in units] == [("f", 0, 1), ("f", 1, 5)]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("bad.js", "function ok() { return 1; }\nfunction broken( {\n"),
        ("bad.go", "package x\nfunc ok() {}\nfunc broken( {\n"),
        ("bad.rs", "fn ok() {}\nfn broken( {\n"),
        ("bad.java", "class A { void ok() {} void broken( { }\n"),
        ("bad.cpp", "int ok() { return 1; }\nint broken( {\n"),
        ("bad.rb", "def ok\n  1\nend\ndef broken(\n"),
        ("bad.ts", "function ok(): number { return 1; }\nclass {{{\n"),
    ],
)
def test_partial_syntax_never_raises_and_keeps_what_parses(path: str, source: str) -> None:
    units = chunk_file(path, source)
    names = {u.name.rsplit(".", 1)[-1] for u in units}
    assert "ok" in names
    covered = {line for u in units for line in range(u.start_line, u.end_line + 1)}
    assert covered, "a non-empty file must give units"
