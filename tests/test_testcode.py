"""Telling test code from implementation code by path and name."""

from __future__ import annotations

import pytest

from bot.commands.testcode import is_test_code


@pytest.mark.parametrize(("path", "name"), [
    ("tests/test_api.py", "test_get"),
    ("tests/client/conftest.py", "server"),
    ("httpx/tests/helpers.py", "make_response"),  # anything under a tests/ folder
    ("pkg/test_models.py", "Model.save"),
    ("pkg/models_test.py", "helper"),
    ("app/tests.py", "OrderTests.test_total"),  # Django
    ("src/test/java/com/acme/CartTest.java", "CartTest.addsItems"),
    ("src/integrationTest/kotlin/Checkout.kt", "checkout"),
    ("server/parse_test.go", "TestParse"),
    ("web/__tests__/cart.js", "renders"),
    ("web/cart.spec.ts", "describe"),
    ("web/cart.test.jsx", "it"),
    ("spec/models/user_spec.rb", "validates"),
    ("lib/user_spec.rb", "x"),
    ("src/CartTests.cs", "CartTests.Adds"),
    ("mod.py", "test_helper"),  # a test function outside the usual places
    ("mod.py", "Suite.testAddition"),  # JUnit 3 / unittest camelCase
    ("mod.py", "TestCart"),  # a unittest class
    ("m.py", "outer.<locals>.test_inner"),
    ("m.py", "test_long#2"),  # the second part of a long test
])
def test_test_code(path, name):
    assert is_test_code(path, name)


@pytest.mark.parametrize(("path", "name"), [
    ("httpx/_client.py", "Client.get"),
    ("src/main/java/com/acme/Cart.java", "Cart.add"),
    ("server/parse.go", "Parse"),
    ("web/cart.ts", "total"),
    ("lib/user.rb", "validate"),
    ("werkzeug/test.py", "EnvironBuilder.get_environ"),  # a library's test helpers are its implementation
    ("src/latest/contest.py", "attest"),
    ("lib/attestation.py", "Testament.read"),
    ("mod.py", "Tester.run"),
    ("mod.py", "testing"),
    ("mod.py", "latest_tests"),
    ("docs/testimonials.py", "render"),
])
def test_implementation(path, name):
    assert not is_test_code(path, name)
