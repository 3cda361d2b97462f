"""SR content items (PS3.3 C.17.3) as plain pydicom datasets, encoded once where constant.

highdicom builds each content item through its validating constructors and, when a
document is made, parses the whole tree again into its own types; pydicom then walks the
tree once per depth level to correct ambiguous VRs while it writes it.  For the few
hundred items of a knee report that is most of the report's time.  This module makes the
same items with plain :class:`pydicom.Dataset` objects:

* every item is *pre-encoded* explicit VR little endian (PS3.5 A.2): its datasets carry
  that encoding as their original one (:meth:`pydicom.Dataset.set_original_encoding`,
  pydicom's own way to write raw elements as they are), so writing the document in that
  transfer syntax neither re-walks the tree nor re-parses the raw elements;
* a coded entry (Code Sequence of one item: Code Value, Coding Scheme Designator, Code
  Meaning and the scheme version if any) is encoded once per code, by pydicom's writer,
  into an immutable :class:`~pydicom.dataelem.RawDataElement` (a named tuple of bytes)
  that every document shares; so are other constant sequences (:func:`encoded_sequence`).
  No mutable dataset is shared between documents;
* a raw element is parsed by pydicom when it is read (``item.ConceptNameCodeSequence``),
  and re-encoded by pydicom when the document is written in another transfer syntax
  (implicit VR on a DIMSE association, say).

The tests compare every element of a document built here with highdicom's document of
the same report (``tests/sr_reference.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_sequence
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import DS, EXPLICIT_VR_LENGTH_32

from dicom_node.reports._checks import ReportInputError, ReportTypeError

#: The encoding items are made in: explicit VR (not implicit), little endian.
EXPLICIT_VR_LITTLE_ENDIAN = (False, True)
CONCEPT_NAME_CODE_SEQUENCE = Tag("ConceptNameCodeSequence")
CONCEPT_CODE_SEQUENCE = Tag("ConceptCodeSequence")
MEASUREMENT_UNITS_CODE_SEQUENCE = Tag("MeasurementUnitsCodeSequence")
CONTENT_TEMPLATE_SEQUENCE = Tag("ContentTemplateSequence")
REFERENCED_SOP_SEQUENCE = Tag("ReferencedSOPSequence")
RELATIONSHIP_TYPE = Tag("RelationshipType")
VALUE_TYPE = Tag("ValueType")
CONTINUITY_OF_CONTENT = Tag("ContinuityOfContent")
GRAPHIC_TYPE = Tag("GraphicType")
#: Relationship types (PS3.3 C.17.3.2.4).
CONTAINS = "CONTAINS"
HAS_OBS_CONTEXT = "HAS OBS CONTEXT"
HAS_CONCEPT_MOD = "HAS CONCEPT MOD"
HAS_PROPERTIES = "HAS PROPERTIES"
INFERRED_FROM = "INFERRED FROM"
SELECTED_FROM = "SELECTED FROM"
RELATIONSHIP_TYPES = frozenset({CONTAINS, HAS_OBS_CONTEXT, HAS_CONCEPT_MOD, HAS_PROPERTIES,
                                INFERRED_FROM, SELECTED_FROM, "HAS ACQ CONTEXT"})
#: Code Value lengths (PS3.3 8.1): longer values go to Long Code Value (UC).
_SHORT_CODE_VALUE = 16


@lru_cache(maxsize=256)
def constant_element(keyword: str, value: str) -> RawDataElement:
    """Attribute ``keyword`` = ``value`` (a code string: Relationship Type, Value Type...),
    encoded once by pydicom and shared (it is immutable).

    Raises
    ------
    ReportInputError
        When ``keyword`` is not a DICOM keyword or ``value`` is not ASCII.
    """
    found = tag_for_keyword(keyword)
    if found is None:
        raise ReportInputError(f"keyword must be a DICOM keyword, got {keyword!r}")
    _ascii((value,), f"the value of {keyword}")
    tag = BaseTag(found)
    vr = dictionary_VR(tag)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = EXPLICIT_VR_LITTLE_ENDIAN
    write_data_element(fp, DataElement(tag, vr, value))
    encoded = fp.getvalue()[12 if vr in EXPLICIT_VR_LENGTH_32 else 8:]  # after tag, VR, length
    return RawDataElement(tag, vr, len(encoded), encoded, 0, *EXPLICIT_VR_LITTLE_ENDIAN)


def item_dataset() -> Dataset:
    """An empty sequence item, pre-encoded explicit VR little endian (see module doc)."""
    item = Dataset()
    item.set_original_encoding(*EXPLICIT_VR_LITTLE_ENDIAN, default_encoding)
    return item


def mark_document(document: Dataset) -> None:
    """Declare the top level of ``document`` pre-encoded explicit VR little endian in its
    own character set, after parsing any raw element it holds at that level.

    The items below are not touched: an item made here is pre-encoded already, any other
    item keeps its own original encoding (and pydicom re-encodes it if it must).

    Parameters
    ----------
    document
        An SR document whose content tree was made with this module.
    """
    for _element in document:  # iteration parses raw top-level elements
        pass
    charset = document.get("SpecificCharacterSet")
    encodings = convert_encodings(charset) if charset else default_encoding
    document.set_original_encoding(*EXPLICIT_VR_LITTLE_ENDIAN, encodings)


def _encoded(tag: BaseTag, items: Sequence[Dataset]) -> RawDataElement:
    """``items`` as the value of sequence ``tag``, encoded by pydicom (explicit VR LE)."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = EXPLICIT_VR_LITTLE_ENDIAN
    write_sequence(fp, DataElement(tag, "SQ", DicomSequence(list(items))), [default_encoding])
    value = fp.getvalue()
    return RawDataElement(tag, "SQ", len(value), value, 0, *EXPLICIT_VR_LITTLE_ENDIAN)


def _ascii(texts: Iterable[str], what: str) -> None:
    for text in texts:
        if not text.isascii():
            raise ReportInputError(f"{what} must be ASCII to be encoded once, got {text!r}")


@lru_cache(maxsize=1024)
def _coded_entry(tag: BaseTag, value: str, scheme: str, meaning: str,
                 version: str | None) -> RawDataElement:
    _ascii((value, scheme, meaning, version or ""), "a code")
    item = Dataset()
    if value.startswith(("http://", "https://", "urn:")):
        item.URNCodeValue = value
    elif len(value) > _SHORT_CODE_VALUE:
        item.LongCodeValue = value
    else:
        item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    if version:
        item.CodingSchemeVersion = version
    item.CodeMeaning = meaning
    return _encoded(tag, [item])


def code_sequence(tag: BaseTag, code: Code) -> RawDataElement:
    """Sequence ``tag`` of the one item that codes ``code`` (PS3.3 Table 8.8-1), encoded
    once per code and tag and shared (it is immutable).

    Parameters
    ----------
    tag
        A Code Sequence attribute, e.g. :data:`CONCEPT_NAME_CODE_SEQUENCE`.
    code
        The coded concept (value, scheme designator, meaning, optional scheme version).

    Raises
    ------
    ReportTypeError
        When ``code`` is not a pydicom ``Code``.
    ReportInputError
        When a field of ``code`` is not ASCII.
    """
    if not isinstance(code, Code):
        raise ReportTypeError(f"code must be a pydicom Code, got {type(code).__name__}")
    return _coded_entry(BaseTag(tag), str(code.value), str(code.scheme_designator),
                        str(code.meaning), code.scheme_version or None)


@lru_cache(maxsize=64)
def content_template(template_id: str, mapping_resource: str = "DCMR") -> RawDataElement:
    """Content Template Sequence of TID ``template_id`` (e.g. ``"1501"``), encoded once."""
    _ascii((template_id, mapping_resource), "a template identifier")
    item = Dataset()
    item.MappingResource = mapping_resource
    item.TemplateIdentifier = template_id
    return _encoded(CONTENT_TEMPLATE_SEQUENCE, [item])


def referenced_sop(sop_class_uid: str, sop_instance_uid: str) -> RawDataElement:
    """Referenced SOP Sequence of one instance, encoded once (share it within a document:
    every IMAGE item of a report references the same source)."""
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return _encoded(REFERENCED_SOP_SEQUENCE, [item])


def content_item(value_type: str, name: Code, relationship_type: str | None) -> Dataset:
    """A content item with its Relationship Type, Value Type and Concept Name.

    Parameters
    ----------
    value_type
        CONTAINER, CODE, NUM, TEXT, UIDREF, SCOORD or IMAGE.
    name
        Concept name.
    relationship_type
        Relationship with the parent item; ``None`` for the root.

    Raises
    ------
    ReportInputError
        When ``relationship_type`` is not a DICOM relationship type.
    """
    if relationship_type is not None and relationship_type not in RELATIONSHIP_TYPES:
        raise ReportInputError(f"relationship_type must be one of {sorted(RELATIONSHIP_TYPES)}"
                               f", got {relationship_type!r}")
    item = item_dataset()
    if relationship_type is not None:
        item[RELATIONSHIP_TYPE] = constant_element("RelationshipType", relationship_type)
    item[VALUE_TYPE] = constant_element("ValueType", value_type)
    item[CONCEPT_NAME_CODE_SEQUENCE] = code_sequence(CONCEPT_NAME_CODE_SEQUENCE, name)
    return item


def container_item(name: Code, relationship_type: str | None, children: Sequence[Dataset],
                   template_id: str | None = None) -> Dataset:
    """CONTAINER, SEPARATE (each child its own statement), with ``children`` and, if
    given, the Content Template Sequence of TID ``template_id``."""
    item = content_item("CONTAINER", name, relationship_type)
    item[CONTINUITY_OF_CONTENT] = constant_element("ContinuityOfContent", "SEPARATE")
    if template_id is not None:
        item[CONTENT_TEMPLATE_SEQUENCE] = content_template(template_id)
    item.ContentSequence = DicomSequence(list(children))
    return item


def code_item(name: Code, value: Code, relationship_type: str) -> Dataset:
    """CODE ``name`` = ``value``."""
    item = content_item("CODE", name, relationship_type)
    item[CONCEPT_CODE_SEQUENCE] = code_sequence(CONCEPT_CODE_SEQUENCE, value)
    return item


def text_item(name: Code, value: str, relationship_type: str) -> Dataset:
    """TEXT ``name`` = ``value`` (UT).

    Raises
    ------
    ReportTypeError
        When ``value`` is not a string.
    """
    if not isinstance(value, str):
        raise ReportTypeError(f"value of TEXT {name.meaning!r} must be a string, got "
                              f"{type(value).__name__}")
    item = content_item("TEXT", name, relationship_type)
    item.TextValue = value
    return item


def uidref_item(name: Code, value: str, relationship_type: str) -> Dataset:
    """UIDREF ``name`` = ``value``."""
    item = content_item("UIDREF", name, relationship_type)
    item.UID = value
    return item


def num_item(name: Code, value: float, unit: Code, relationship_type: str | None,
             children: Sequence[Dataset] = ()) -> Dataset:
    """NUM ``name`` = ``value`` ``unit``: Numeric Value (DS, pydicom's auto format) and,
    for a float, the exact Floating Point Value (FD), as highdicom codes it.

    Raises
    ------
    ReportTypeError
        When ``value`` is not an int or a float.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ReportTypeError(f"value of NUM {name.meaning!r} must be an int or a float, "
                              f"got {type(value).__name__}")
    item = content_item("NUM", name, relationship_type)
    measured = item_dataset()
    measured.NumericValue = DS(value, auto_format=True)
    if isinstance(value, float):
        measured.FloatingPointValue = value
    measured[MEASUREMENT_UNITS_CODE_SEQUENCE] = code_sequence(MEASUREMENT_UNITS_CODE_SEQUENCE,
                                                              unit)
    item.MeasuredValueSequence = DicomSequence([measured])
    if children:
        item.ContentSequence = DicomSequence(list(children))
    return item


def image_item(name: Code, reference: RawDataElement, relationship_type: str) -> Dataset:
    """IMAGE ``name`` referencing the instance of ``reference`` (:func:`referenced_sop`)."""
    item = content_item("IMAGE", name, relationship_type)
    item[REFERENCED_SOP_SEQUENCE] = reference
    return item


def scoord_item(name: Code, graphic_type: str, graphic_data: npt.NDArray[np.float64],
                selected_from: RawDataElement) -> Dataset:
    """INFERRED FROM SCOORD ``graphic_type`` of the ``(N, 2)`` (column, row) points
    ``graphic_data``, SELECTED FROM the image item(s) of ``selected_from`` (an encoded
    Content Sequence, :func:`selected_from_image`).

    Raises
    ------
    ReportInputError
        When ``graphic_data`` is not ``(N, 2)`` with N >= 1.
    """
    points = np.asarray(graphic_data, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
        raise ReportInputError(f"graphic_data must be (N, 2) points, got shape {points.shape}")
    item = content_item("SCOORD", name, INFERRED_FROM)
    item.GraphicData = points.ravel().tolist()
    item[GRAPHIC_TYPE] = constant_element("GraphicType", graphic_type)
    item[Tag("ContentSequence")] = selected_from
    return item


def selected_from_image(name: Code, reference: RawDataElement) -> RawDataElement:
    """Content Sequence of one SELECTED FROM IMAGE item, encoded once: the children every
    SCOORD of a report on one image shares."""
    return _encoded(Tag("ContentSequence"), [image_item(name, reference, SELECTED_FROM)])


#: Attributes of a coded entry :func:`pre_encode` shares (Code Value form only).
_CODE_ATTRIBUTES = frozenset({"CodeValue", "CodingSchemeDesignator", "CodeMeaning",
                              "CodingSchemeVersion"})


def _shared_code(element: DataElement) -> RawDataElement | None:
    """The shared encoding of a Code Sequence ``element`` of one plain ASCII coded entry,
    or None when it is anything else (kept as it is)."""
    if not element.keyword.endswith("CodeSequence") or len(element.value) != 1:
        return None
    entry = element.value[0]
    keywords = {e.keyword for e in entry}
    if not keywords <= _CODE_ATTRIBUTES or not {"CodeValue", "CodingSchemeDesignator",
                                                 "CodeMeaning"} <= keywords:
        return None
    fields = [str(entry.CodeValue), str(entry.CodingSchemeDesignator), str(entry.CodeMeaning),
              str(entry.get("CodingSchemeVersion") or "")]
    if not all(f.isascii() for f in fields) or len(fields[0]) > _SHORT_CODE_VALUE:
        return None
    return _coded_entry(BaseTag(element.tag), *fields[:3], fields[3] or None)


def pre_encode(item: Dataset) -> None:
    """Make a content tree built elsewhere (highdicom's) write as this module's trees do:
    every dataset below ``item`` declared pre-encoded explicit VR little endian in its own
    character set, every Code Sequence of one plain coded entry replaced by its shared
    encoding (:func:`code_sequence`). What is written does not change.

    Parameters
    ----------
    item
        The root CONTAINER (or any content item); changed in place.
    """
    for element in list(item):
        if element.VR != "SQ" or element.is_empty:
            continue
        shared = _shared_code(element)
        if shared is not None:
            item[element.tag] = shared
            continue
        for child in element.value:
            charset = child.get("SpecificCharacterSet")
            child.set_original_encoding(*EXPLICIT_VR_LITTLE_ENDIAN,
                                        convert_encodings(charset) if charset else default_encoding)
            pre_encode(child)
