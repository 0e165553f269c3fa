"""The description of every ``akorn`` command in ``--help`` is whole sentences, not a cut paragraph."""

from __future__ import annotations

import pytest

from studies import cli
from studies.registry import REGISTRY


@pytest.mark.parametrize("name", [n for n, e in REGISTRY.items() if ":" not in e.target])
def test_help_description_ends_with_a_sentence(name):
    parser, _ = cli.build_parser(name)
    text = parser.description.strip()
    assert text and text[-1] in ".!?", f"akorn {name} --help stops mid-sentence: ...{text[-80:]!r}"
    for paragraph in text.split("\n\n"):
        assert paragraph.rstrip()[-1] not in ",:;", f"akorn {name}: a paragraph is cut: {paragraph[-80:]!r}"
