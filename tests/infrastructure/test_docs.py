"""The docs say what the template builds (issue 11 item 11): the counts they state (tables, KMS keys, CA keys,
alarms, functions, schedules, dashboards) are the template's; every template name they quote exists; every
parameter is documented; every relative link and anchor in docs/ and README.md resolves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stepless.local.template import functions, load_template

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
NUMBERS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
NUMBER = r"(\d+|" + "|".join(NUMBERS) + r")"

# A backticked CamelCase word that ends like a template name (a parameter, resource or output) must be one;
# these are the exceptions (AWS API and property names with such endings).
TEMPLATEISH = re.compile(r"[A-Z][A-Za-z0-9]*(Table|Key|Function|Alarm|Arn|Uri|Bucket|Queue|Topic|Role|Distribution|"
                         r"Domain|Policy|Seconds|Days|Limit|Schedule|Threshold|Email|Backend|Level|Point|Version|Url|"
                         r"Id|Name|Prefix|Target|Layer|Api|Control|Subscription|Dashboard|Group|Mapping)")
NOT_TEMPLATE_NAMES = {"PendingWindowInDays", "ApiId"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    return {path: path.read_text() for path in DOCS}


def _of_type(template: dict[str, Any], kind: str) -> list[str]:
    return [k for k, v in template["Resources"].items() if v["Type"] == kind]


def _facts(template: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """What the docs may count: a regex after the number → the template's count."""
    keys = _of_type(template, "AWS::KMS::Key")
    ca_keys = [k for k in keys if template["Resources"][k]["Properties"].get("KeyUsage") == "SIGN_VERIFY"]
    schedules = [e for f in functions(template).values() for e in f["Events"].values() if e["Type"] == "Schedule"]
    return {
        "tables": (r"(?:DynamoDB )?tables\b", len(_of_type(template, "AWS::DynamoDB::Table"))),
        "KMS keys": (r"KMS keys\b", len(keys)),
        "CA keys": (r"CA keys\b", len(ca_keys)),
        "alarms": (r"(?:CloudWatch )?alarms?\b", len(_of_type(template, "AWS::CloudWatch::Alarm"))),
        "functions": (r"(?:arm64 Python [\d.]+ )?functions\b", len(functions(template))),
        "schedules": (r"schedules\b", len(schedules)),
        "dashboards": (r"dashboards?\b", len(_of_type(template, "AWS::CloudWatch::Dashboard"))),
    }


def _value(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word.lower()]


def test_counts_in_the_docs_are_the_templates(template: dict[str, Any], texts: dict[Path, str]) -> None:
    seen: dict[str, int] = {}
    for fact, (after, count) in _facts(template).items():
        for path, text in texts.items():
            for m in re.finditer(rf"\b{NUMBER} {after}", text, re.IGNORECASE):
                assert _value(m.group(1)) == count, f"{path.name}: '{m.group(0)}', the template has {count} {fact}"
                seen[fact] = seen.get(fact, 0) + 1
    for fact in ("tables", "KMS keys", "CA keys", "alarms", "functions"):
        assert seen.get(fact), f"the docs never state how many {fact} the stack has"


def test_the_counts_are_checked_against_something(template: dict[str, Any]) -> None:
    """Guards the test above: the template really has these (a renamed type would make it vacuous)."""
    facts = {fact: count for fact, (_, count) in _facts(template).items()}
    assert facts["tables"] >= 5 and facts["CA keys"] == 4 and facts["alarms"] >= 10 and facts["functions"] == 4


def test_template_names_quoted_in_the_docs_exist(template: dict[str, Any], texts: dict[Path, str]) -> None:
    known = set(template["Parameters"]) | set(template["Resources"]) | set(template.get("Outputs") or {}) | set(
        template.get("Conditions") or {}) | set(template.get("Rules") or {})
    allowed = known | NOT_TEMPLATE_NAMES
    quoted = 0
    for path, text in texts.items():
        for name in set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", text)):
            if TEMPLATEISH.fullmatch(name):
                assert name in allowed, f"{path.name}: `{name}` is not in template.yaml"
                quoted += 1
    assert quoted >= 30


def test_every_parameter_is_in_the_deployment_guides_table(template: dict[str, Any], texts: dict[Path, str]) -> None:
    guide = texts[ROOT / "docs" / "deployment.md"]
    table = guide[guide.index("### Parameters (template.yaml)"):]
    table = table[:table.index("\n\n", table.index("|"))]
    documented = {n for row in table.splitlines() if row.startswith("| `")
                  for n in re.findall(r"`([A-Za-z0-9]+)`", row.split("|")[1])}
    assert documented == set(template["Parameters"])


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    out: set[str] = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            slug, n = _slug(m.group(1)), 1
            while slug in out:
                slug, n = f"{_slug(m.group(1))}-{n}", n + 1
            out.add(slug)
    return out


def test_relative_links_resolve(texts: dict[Path, str]) -> None:
    checked = 0
    for path, text in texts.items():
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.exists(), f"{path.name}: link to {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked.read_text()), f"{path.name}: link to {target}: no such heading"
            checked += 1
    assert checked >= 20


def test_compatibility_table_lists_every_route_we_serve(template: dict[str, Any], texts: dict[Path, str]) -> None:
    """docs/compatibility.md names every route of the template, and every endpoint it says we serve exists."""
    from stepless.local.template import routes

    text = texts[ROOT / "docs" / "compatibility.md"]
    served = {f"{r.method} {r.path.replace('+}', '}')}" for r in routes(template) if not r.path.startswith("/1.0/")}
    named = set(re.findall(r"`((?:GET|HEAD|POST) /[^`\s]*)`", text))
    assert served <= named, f"routes missing from compatibility.md: {sorted(served - named)}"
    rows = [row for row in text.splitlines() if row.startswith("| `") and "| served" in row]
    said_served = {e for row in rows for e in re.findall(r"`((?:GET|HEAD|POST) /[^`\s]*)`", row.split("|")[1])}
    assert said_served <= served, f"compatibility.md says we serve {sorted(said_served - served)}"
    assert len(said_served) >= 20
