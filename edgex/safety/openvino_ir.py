"""Check an OpenVINO IR pair (model.xml + model.bin) before OpenVINO maps the weights.

Every Const layer names a byte range of the .bin; a short or mismatched .bin would make the
runtime read past its end. The XML is parsed with entity declarations refused (no entity bombs).
"""

from __future__ import annotations

import re
from pathlib import Path

from edgex.errors import DataError, MissingInputError, RefusedError

_MAX_XML_BYTES = 256 << 20


def check_ir_weights(xml_path: Path) -> dict:
    """Every Const's offset+size must lie within model.bin; returns {"consts": n, "bin_bytes": size}."""
    import xml.etree.ElementTree as ET

    xml_path = Path(xml_path)
    if xml_path.stat().st_size > _MAX_XML_BYTES:
        raise DataError(f"OpenVINO IR {xml_path} is larger than {_MAX_XML_BYTES >> 20} MB of XML")
    text = xml_path.read_bytes()
    if re.search(rb"<!(DOCTYPE|ENTITY)", text):
        raise RefusedError(f"OpenVINO IR {xml_path} declares XML entities, which IR files never need",
                           "Do not use this file.")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise DataError(f"OpenVINO IR {xml_path} is not valid XML ({exc}); it may be truncated",
                        "Re-export or re-download it.") from exc
    if root.tag != "net":
        raise DataError(f"{xml_path} is XML but not an OpenVINO IR (root element <{root.tag}>)")
    bin_path = xml_path.with_suffix(".bin")
    ranges = []
    for layer in root.iter("layer"):
        data = layer.find("data")
        if data is None or "offset" not in data.attrib or "size" not in data.attrib:
            continue
        try:
            offset, size = int(data.attrib["offset"]), int(data.attrib["size"])
        except ValueError as exc:
            raise DataError(f"OpenVINO IR {xml_path}: layer {layer.get('name')!r} has a non-numeric offset/size",
                            "Re-export the model.") from exc
        if offset < 0 or size < 0:
            raise DataError(f"OpenVINO IR {xml_path}: layer {layer.get('name')!r} has a negative offset/size")
        ranges.append((layer.get("name", "?"), offset, size))
    if not ranges:
        return {"consts": 0, "bin_bytes": bin_path.stat().st_size if bin_path.is_file() else 0}
    if not bin_path.is_file():
        raise MissingInputError(f"OpenVINO IR {xml_path} needs its weights file {bin_path}, which is missing",
                                "Copy model.xml together with model.bin.")
    bin_bytes = bin_path.stat().st_size
    for name, offset, size in ranges:
        if offset + size > bin_bytes:
            raise DataError(f"OpenVINO IR weights {bin_path} are short: layer {name!r} needs bytes "
                            f"{offset}..{offset + size} but the file holds {bin_bytes}",
                            "The .bin is truncated or belongs to another model; re-download both files.")
    return {"consts": len(ranges), "bin_bytes": bin_bytes}
