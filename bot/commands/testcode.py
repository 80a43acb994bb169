"""Telling test code from implementation code by path and name, so answers can rank implementations first."""

from __future__ import annotations

import re

MODES = ("demote", "include", "exclude")
# folders that hold tests: tests/, test/, __tests__/, spec/ (Ruby, Jasmine), src/test/java, src/androidTest, ...
_TEST_FOLDER = re.compile(r"^(?:__tests__|__mocks__|tests?|specs?|testdata"
                          r"|(?:unit|integration|functional|e2e|android|instrumented)[-_]?tests?)$", re.IGNORECASE)
_TEST_FILE = re.compile(
    r"^(?:test_.+\.py|.+_test\.py|conftest\.py|tests\.py"  # pytest, Django
    r"|.+_test\.(?:go|rs|cc|cpp|c|rb|exs?)"  # Go, Rust, C/C++ (gtest), Ruby (minitest), Elixir
    r"|.+_spec\.rb"  # RSpec
    r"|.+\.(?:test|spec)\.(?:[cm]?[jt]sx?)"  # Jest, Vitest, Jasmine, Mocha
    r"|.+(?:Test|Tests|IT|Spec)\.(?:java|kt|kts|scala|groovy|cs|swift)"  # JUnit, Kotest, Spock, NUnit, XCTest
    r"|test_.+\.(?:c|cc|cpp))$"
)
# test functions, methods and classes: test_x, testX, test (pytest, unittest, JUnit 3), TestX (Go, unittest)
_TEST_NAME = re.compile(r"^(?:test(?:_|[A-Z0-9]|$)|Test[A-Z0-9_])")


def is_test_code(path: str, name: str) -> bool:
    """True when the function at ``path`` named ``name`` (qualified) is test code rather than implementation."""
    *folders, file = path.split("/")
    if any(_TEST_FOLDER.match(folder) for folder in folders) or _TEST_FILE.match(file):
        return True
    return bool(_TEST_NAME.match(name.split("#")[0].rsplit(".", 1)[-1]))
