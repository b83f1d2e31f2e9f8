"""mkdocs hooks: the command-line and configuration reference pages, generated from the
code when the site is built (so they cannot drift from it)."""

import dataclasses
import os
import re
import typing

README_MARKER = "<!-- samtone-readme -->"
CLI_MARKER = "<!-- samtone-cli-reference -->"
CONFIG_MARKER = "<!-- samtone-config-reference -->"


def cli_reference():
    """Markdown: ``samtone --help`` and each subcommand's, as the parser prints them."""
    import argparse

    from samtone_tf.cli.parser import build_parser

    parser = build_parser()
    os.environ.setdefault("COLUMNS", "100")
    parts = ["## samtone\n\n```text\n" + parser.format_help() + "```\n"]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        parts.append(f"## samtone {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def _type_name(hint):
    if hint in (int, float, str, bool, list):
        return hint.__name__
    args = [a for a in typing.get_args(hint)]
    names = ["null" if a is type(None) else _type_name(a) for a in args]
    return " | ".join(names) if names else str(hint)


def _yaml_comments(path):
    """{(section, key): (default text, comment)} from the defaults file's lines."""
    found, section, last = {}, None, None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            top = re.match(r"^(\w+):\s*$", line)
            key = re.match(r"^  (\w+):\s*([^#]*?)\s*(?:#\s?(.*))?$", line)
            more = re.match(r"^\s+#\s?(.*)$", line)
            if top:
                section, last = top.group(1), None
            elif key and section:
                last = (section, key.group(1))
                found[last] = [key.group(2), key.group(3) or ""]
            elif more and last:
                found[last][1] += " " + more.group(1)
    return found


def config_reference():
    """Markdown: one table per section of the job's configuration."""
    from samtone_tf.runs import config

    defaults = os.path.join(os.path.dirname(config.__file__), "..", "configs", "default.yaml")
    comments = _yaml_comments(os.path.normpath(defaults))
    parts = []
    for section, cls in config.SECTIONS.items():
        hints = typing.get_type_hints(cls)
        rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
        for field in dataclasses.fields(cls):
            default, meaning = comments.get((section, field.name), ["", ""])
            meaning = meaning.replace("|", "\\|")
            kind = _type_name(hints[field.name]).replace("|", "\\|")
            rows.append(f"| `{section}.{field.name}` | {kind} | "
                        f"`{default}` | {meaning} |")
        parts.append(f"## {section}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def readme():
    """README.md, the site's first page, with its links into docs/ made site-relative."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as handle:
        return handle.read().replace("](docs/", "](")


def on_page_markdown(markdown, page, config, files):
    if README_MARKER in markdown:
        markdown = markdown.replace(README_MARKER, readme())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    return markdown
