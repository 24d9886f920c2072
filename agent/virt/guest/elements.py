"""Building domain XML safely: xml.etree only, and every value checked for what XML can carry.

ElementTree escapes `<`, `&`, quotes and `>` (so `]]>` is harmless), but it writes control
characters (and carriage returns) as they are, and a document holding U+0001 is not XML at
all: libvirt would refuse it, or a lenient parser would cut it short. So every text and
attribute value is checked against XML 1.0's `Char` production before it goes in (`checked`),
and `to_xml` checks the whole tree once more before serialising it, so a value that bypassed
the helpers is caught too.

Namespaced elements (`<metadata>` children) are written with a literal `prefix:name` tag and an
`xmlns:prefix` attribute rather than through `ET.register_namespace`, which would change a
process-wide table.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agent.virt.guest.errors import InvalidXMLValue

# Everything outside XML 1.0's Char production: C0 controls but tab, newline and carriage
# return; surrogates; U+FFFE and U+FFFF. https://www.w3.org/TR/xml/#charsets
# Carriage return is a Char, but a parser turns a raw CR (and CR LF) in text into LF
# (https://www.w3.org/TR/xml/#sec-line-ends) and ElementTree writes it raw: refused too, as
# the value would not come back as it went in.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def checked(value: str, what: str) -> str:
    """`value` if XML can carry it; else `InvalidXMLValue` naming `what` and the character."""
    if not isinstance(value, str):
        raise InvalidXMLValue(what=what, reason=f"{type(value).__name__} is not text", value=value)
    bad = _NOT_XML_CHAR.search(value)
    if bad is not None:
        char = bad.group()
        raise InvalidXMLValue(
            what=what,
            reason=f"character U+{ord(char):04X} at offset {bad.start()} is not allowed in XML",
            value=value,
        )
    return value


def element(tag: str, text: str | None = None, /, **attrib: str) -> ET.Element:
    """A detached element; text and attribute values are `checked`."""
    node = ET.Element(tag, {k: checked(v, f"<{tag} {k}=...>") for k, v in attrib.items()})
    if text is not None:
        node.text = checked(text, f"<{tag}> text")
    return node


def sub(parent: ET.Element, tag: str, text: str | None = None, /, **attrib: str) -> ET.Element:
    """A child of `parent`; text and attribute values are `checked`."""
    node = element(tag, text, **attrib)
    parent.append(node)
    return node


def namespaced(prefix: str, uri: str, tag: str) -> ET.Element:
    """The root of a namespaced fragment: `<prefix:tag xmlns:prefix="uri">`."""
    return ET.Element(f"{prefix}:{tag}", {f"xmlns:{prefix}": uri})


def to_xml(root: ET.Element) -> str:
    """`root` serialised, after checking every text, tail and attribute in the tree."""
    for node in root.iter():
        for name, value in node.attrib.items():
            checked(value, f"<{node.tag} {name}=...>")
        if node.text is not None:
            checked(node.text, f"<{node.tag}> text")
        if node.tail is not None:
            checked(node.tail, f"text after <{node.tag}>")
    return ET.tostring(root, encoding="unicode")
