import pytest

from usclip_sdk import taxonomy as tx


def test_shape_of_the_taxonomy():
    assert len(tx.BODY_SYSTEMS) == 9
    assert len(tx.organs()) == 52 and len(set(tx.organs())) == 52
    assert tx.FIELDS == ("Diagnosis", "Body_system_level", "Organ_level", "Shape", "Margins",
                         "Echogenicity", "InternalCharacteristics", "PosteriorAcoustics",
                         "Vascularity")
    assert tx.group_sizes() == (5, 9, 52, 7, 2, 5, 6, 2, 5)
    assert len(tx.class_names()) == 93
    assert len(tx.descriptor_vocabulary()) == 88


def test_every_organ_maps_to_its_system():
    for system, organs in tx.BODY_SYSTEMS:
        for organ in organs:
            assert tx.system_of(organ) == system
    assert tx.system_of("LIVER") == "Abdomen and retroperitoneum"


def test_class_index_matches_flat_list():
    names = tx.class_names()
    for i, (field, value) in enumerate(names):
        assert tx.class_index(field, value) == i


def test_parse_record_handles_strings_lists_missing_and_case():
    rec = {"media_name": "a.png", "Diagnosis": "Cyst", "Shape": ["oval", "round", "oval"],
           "Margins": None, "Echogenicity": ""}
    out = tx.parse_record(rec)
    assert out["Diagnosis"] == ("cyst",)
    assert out["Shape"] == ("oval", "round")
    assert out["Margins"] == () and out["Echogenicity"] == () and out["Vascularity"] == ()


def test_unknown_values_raise_naming_field_or_are_dropped():
    with pytest.raises(tx.UnknownLabelError, match="Shape"):
        tx.parse_record({"Shape": "triangular"})
    assert tx.parse_record({"Shape": ["triangular", "oval"]}, strict=False)["Shape"] == ("oval",)
    with pytest.raises(ValueError):
        tx.dimension("Colour")


def test_prompts_use_phrases():
    ps = tx.prompts("Vascularity", "no")
    assert len(ps) >= 3 and all("no vascularity" in p for p in ps)
    assert tx.prompts("Organ_level", "Liver", templates=["{}!"]) == ["liver!"]
