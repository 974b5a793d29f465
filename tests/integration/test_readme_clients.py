"""The README's client quick starts are the ones the clients' own tests run as written:
the Python one is clients/python/examples/quickstart.py (test_sdk_python.py runs it), the
TypeScript one the first js block of clients/typescript/README.md (its readme.test.js runs
it). A README edit that drifts from them fails here."""
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def read(*p):
    with open(os.path.join(ROOT, *p)) as f:
        return f.read()


def blocks(text, lang):
    return re.findall(r"```" + lang + r"\n(.*?)```", text, flags=re.S)


def test_python_quick_start_is_the_tested_example():
    example = read("clients", "python", "examples", "quickstart.py").strip()
    assert example in [b.strip() for b in blocks(read("README.md"), "python")]


def test_typescript_quick_start_is_the_tested_block():
    tested = blocks(read("clients", "typescript", "README.md"), "js")[0].strip()
    assert tested in [b.strip() for b in blocks(read("README.md"), "js")]


def test_mcp_config_names_a_real_verb_and_flag():
    import json
    cfg = json.loads(blocks(read("README.md"), "json")[0])
    args = cfg["mcpServers"]["agentd"]["args"]
    assert args[0] == "mcp" and "--embedded" in read("docs", "mcp.md")
