"""People, roles and hashed tokens: what is stored, what matches, and what a bad file says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import watchdog.people as people_module
from watchdog.people import (
    COST,
    People,
    PeopleError,
    add_person,
    hash_token,
    load_people,
    new_token,
    parse_people,
    token_matches,
)

ROLES = ["oncall", "lead", "team"]


def test_a_token_is_stored_as_a_salted_scrypt_hash_and_matches_only_itself() -> None:
    token = new_token()
    stored = hash_token(token)
    scheme, cost, block, parallel, salt, key = stored.split("$")
    assert (scheme, int(cost), int(block), int(parallel)) == ("scrypt", COST, 8, 1)
    lookup, secret = token.split(".")
    assert secret not in stored and len(salt) >= 16 and len(key) >= 40
    assert salt == lookup, "the token's public part is its salt"
    assert new_token().split(".")[0] != lookup, "a fresh salt for each token"
    assert token_matches(token, stored)
    assert not token_matches(token[:-1], stored)
    assert not token_matches(f"{lookup}.{new_token().split('.')[1]}", stored)
    assert not token_matches(token + "x", stored)
    assert not token_matches("", stored)


def test_people_add_writes_only_the_hash_readable_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    token = new_token()
    add_person(path, "lee", ["lead"], token)
    add_person(path, "tara", ["team", "team", "oncall"], new_token())
    text = path.read_text()
    assert token.split(".")[1] not in text and "scrypt$" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    people = load_people(path, ROLES)
    assert [(p.name, p.roles) for p in people] == [("lee", ("lead",)), ("tara", ("team", "oncall"))]
    replaced = new_token()
    with pytest.raises(PeopleError, match="--rotate"):
        add_person(path, "lee", ["lead", "oncall"], replaced)
    add_person(path, "lee", ["lead", "oncall"], replaced, rotate=True)
    (lee,) = [p for p in load_people(path) if p.name == "lee"]
    assert lee.roles == ("lead", "oncall") and token_matches(replaced, lee.token_hash)
    assert not token_matches(token, lee.token_hash)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("people: {lee: 1}", "people: expected a list of entries, found a dict"),
        ("persons: []", "expected a mapping with one key, people"),
        ("people:\n  - name: lee\n", "people[0] (lee): roles: expected a non-empty list"),
        ("people:\n  - {name: 'a b', roles: [lead]}", "people[0]: name 'a b': expected 1-64"),
        (
            "people:\n  - {name: lee, roles: [boss], token_hash: x}",
            "people[0] (lee): role 'boss' is not one of the policy's roles (oncall, lead, team)",
        ),
        (
            "people:\n  - {name: lee, roles: [lead], token_hash: hunter2}",
            "people[0] (lee): token_hash: expected scrypt$N$r$p$salt$hash",
        ),
        (
            "people:\n  - {name: lee, roles: [lead]}",
            "people[0] (lee): token_hash: expected the hash `watchdog people add` writes, "
            "found nothing",
        ),
        (
            "people:\n  - {name: lee, roles: [lead], token: abc}",
            "people[0]: unknown key 'token'; expected name, roles, token_hash",
        ),
        ("people: [", "not well-formed YAML"),
    ],
)
def test_a_bad_file_names_the_file_the_entry_and_what_was_expected(
    text: str, expected: str
) -> None:
    with pytest.raises(PeopleError) as error:
        parse_people(text, "/etc/watchdog/people.yaml", ROLES)
    message = str(error.value)
    assert message.startswith("/etc/watchdog/people.yaml: ") and expected in message, message
    assert "hunter2" not in message, "a pasted plain token is never repeated"


def test_the_same_name_twice_is_refused() -> None:
    entry = f"  - {{name: lee, roles: [lead], token_hash: '{hash_token('t')}'}}\n"
    with pytest.raises(PeopleError, match=r"people\[1\]: name 'lee' appears twice"):
        parse_people("people:\n" + entry * 2, "p.yaml", ROLES)


def test_a_missing_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(PeopleError, match=r"people.yaml: cannot read the people file"):
        load_people(tmp_path / "people.yaml")


def test_sign_in_and_bearer_find_the_person_only_with_their_token(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    tokens = {name: new_token() for name in ("lee", "tara")}
    add_person(path, "lee", ["lead"], tokens["lee"])
    add_person(path, "tara", ["team"], tokens["tara"])
    people = People(path, ROLES)
    assert people.sign_in("lee", tokens["lee"]).name == "lee"  # type: ignore[union-attr]
    assert people.sign_in("lee", tokens["tara"]) is None
    assert people.sign_in("nobody", tokens["lee"]) is None
    assert people.bearer(tokens["tara"]).name == "tara"  # type: ignore[union-attr]
    assert people.bearer(tokens["tara"]).name == "tara"  # type: ignore[union-attr]
    assert people.bearer(tokens["tara"] + "x") is None
    assert people.bearer(tokens["tara"].split(".")[1]) is None


def test_a_made_up_bearer_token_costs_no_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.yaml"
    for name in ("lee", "tara", "tom"):
        add_person(path, name, ["team"], new_token())
    people = People(path, ROLES)
    checks: list[str] = []
    real = people_module.token_matches
    monkeypatch.setattr(people_module, "token_matches", lambda t, h: checks.append(h) or real(t, h))
    for made_up in ("x", "", "a.b", new_token(), "." * 40):
        assert people.bearer(made_up) is None
    assert checks == [], "no scrypt for a token that names no one's salt"
    lee = new_token()
    add_person(path, "lee", ["team"], lee, rotate=True)
    assert people.bearer(lee) is not None and len(checks) == 1


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.yaml"
    lee = new_token()
    add_person(path, "lee", ["lead"], lee)
    people = People(path, ROLES)
    assert people.bearer(lee) is not None
    rotated = new_token()
    add_person(path, "lee", ["lead"], rotated, rotate=True)
    assert people.bearer(lee) is None, "the old token stops working once the file changes"
    assert people.bearer(rotated) is not None
    path.write_text("people: [")
    assert people.named("lee") is not None, "a typo locks nobody out"
