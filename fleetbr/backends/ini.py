"""Small helpers for the INI-like files of systemd-networkd: sections kept verbatim."""

from __future__ import annotations

from fleetbr.validate import split_lines


def sections(text: str) -> list[tuple[str, list[str]]]:
    """``[(section name, its lines)]`` in file order; lines before any section go under ``""``.
    Comment and blank lines stay with the section they are in; lines end at ``\\n`` only (as
    systemd reads them: a ``\\f`` or U+2028 inside a comment is no line break)."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in split_lines(text):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            out.append((stripped[1:-1].strip(), []))
        else:
            out[-1][1].append(line)
    return out


def values(lines: list[str]) -> list[tuple[str, str]]:
    """``key=value`` pairs of a section's lines (comments and blanks skipped)."""
    pairs = []
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";")) and "=" in stripped:
            key, _, value = stripped.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def render(parts: list[tuple[str, list[str]]]) -> str:
    """Sections back to text, one blank line between them, ending with a newline."""
    blocks = []
    for name, lines in parts:
        body = [line for line in lines if line.strip()]
        if name:
            blocks.append("\n".join([f"[{name}]", *body]))
        elif body:
            blocks.append("\n".join(body))
    return "\n\n".join(blocks) + "\n"
