"""Surface forms for report captions: how a radiologist may write each taxonomy value.

One table per kind of mention. Every phrase here names exactly one (field, value) of
``usclip_sdk.taxonomy``; ``captions.mentions`` reads a caption back through the same tables,
which is how the tests prove a caption never states a value its labels lack.

Rules kept by these tables (so that reading back is unambiguous):
- phrases are written as they should appear (lower case except proper names and acronyms:
  "Achilles tendon", "MSK ultrasound") and are unique across all tables, ignoring case;
- a phrase that contains another one belongs to the value it is meant to name, and reading
  back always takes the longest phrase first (``"mixed cystic and solid"`` is never read as
  ``"solid"``, ``"infant breast"`` never as ``"breast"``);
- no negated forms ("no shadowing") exist: an absent value is never written.
- forms starting with ``"of "`` or ``"with "`` follow the noun; the others precede it.
"""
from __future__ import annotations

__all__ = ["ORGAN_NAMES", "SYSTEM_NAMES", "DIAGNOSIS_NOUNS", "NORMAL_PHRASES", "ADJECTIVES",
           "FINDING_NOUNS", "all_phrases"]

# Organ_level: several ways to name each of the 52 organs (UHAT order).
ORGAN_NAMES: dict[str, tuple[str, ...]] = {
    "Liver": ("liver", "hepatic parenchyma", "right lobe of the liver", "left hepatic lobe",
              "liver parenchyma"),
    "Gallbladder and bile ducts": ("gallbladder", "biliary tree", "gallbladder and bile ducts",
                                   "gallbladder fossa"),
    "Pancreas": ("pancreas", "pancreatic head", "pancreatic body", "pancreatic tail",
                 "pancreatic parenchyma"),
    "Spleen": ("spleen", "splenic parenchyma", "splenic hilum"),
    "Appendix": ("appendix", "vermiform appendix", "appendiceal region"),
    "Gastrointestinal tract": ("gastrointestinal tract", "bowel", "bowel loop", "small bowel",
                               "gastric antrum"),
    "Peritoneum mesentery and omentum": ("peritoneum", "mesentery", "omentum",
                                         "peritoneal cavity"),
    "Retroperitoneum and great vessels": ("retroperitoneum", "abdominal aorta",
                                          "retroperitoneal space", "inferior vena cava"),
    "Adrenal glands": ("adrenal gland", "right adrenal gland", "left adrenal gland",
                       "suprarenal region"),
    "Abdominal wall": ("abdominal wall", "anterior abdominal wall", "rectus sheath"),
    "Kidney and ureter": ("kidney", "renal parenchyma", "right kidney", "left kidney",
                          "renal cortex", "kidney and ureter"),
    "Bladder": ("bladder", "urinary bladder", "bladder wall"),
    "Scrotum": ("scrotum", "testis", "testicle", "scrotal contents"),
    "Penis and perineum": ("penis", "perineum", "penile shaft", "perineal soft tissues"),
    "Uterus": ("uterus", "myometrium", "uterine corpus", "uterine fundus"),
    "Adnexa": ("adnexa", "ovary", "right ovary", "left adnexa", "adnexal region"),
    "Vagina": ("vagina", "vaginal vault", "vaginal wall"),
    "Thyroid gland": ("thyroid", "thyroid gland", "right thyroid lobe", "left lobe of the thyroid",
                      "thyroid isthmus"),
    "Parathyroid glands": ("parathyroid gland", "parathyroid region", "parathyroid bed"),
    "Salivary glands": ("salivary gland", "parotid gland", "submandibular gland"),
    "Lymph nodes": ("lymph node", "cervical lymph node", "regional lymph node",
                    "superficial lymph node"),
    "Ocular": ("eye", "globe", "orbit", "ocular globe"),
    "Ear": ("ear", "auricle", "external ear", "periauricular region"),
    "Larynx": ("larynx", "laryngeal region", "vocal cords"),
    "Breast": ("breast", "breast tissue", "right breast", "left breast", "breast parenchyma",
               "fibroglandular tissue"),
    "Axilla": ("axilla", "axillary region", "axillary soft tissues"),
    "Shoulder": ("shoulder", "rotator cuff", "shoulder joint", "supraspinatus tendon"),
    "Elbow": ("elbow", "elbow joint", "olecranon region"),
    "Wrist and carpus": ("wrist", "carpus", "carpal region", "dorsal wrist"),
    "Fingers": ("finger", "digit", "fingers"),
    "Hip groin and buttock": ("hip", "groin", "buttock", "inguinal region", "hip joint"),
    "Knee": ("knee", "knee joint", "popliteal fossa", "patellar tendon"),
    "Ankle": ("ankle", "ankle joint", "Achilles tendon"),
    "Foot": ("foot", "plantar fascia", "forefoot", "dorsum of the foot"),
    "Peripheral nerves": ("peripheral nerve", "median nerve", "ulnar nerve", "nerve"),
    "Soft tissues": ("soft tissues", "subcutaneous tissue", "superficial soft tissues", "subcutis"),
    "Skull": ("skull", "scalp", "calvarium"),
    "Pulmonary": ("lung", "pulmonary parenchyma", "lung base", "lungs"),
    "Pleural space": ("pleural space", "pleura", "pleural cavity", "costophrenic angle"),
    "Heart and mediastinum": ("heart", "mediastinum", "cardiac chambers", "heart and mediastinum"),
    "Thoracic wall": ("chest wall", "thoracic wall", "intercostal space"),
    "Pediatric abdomen and retroperitoneum": ("paediatric abdomen", "pediatric abdomen",
                                              "abdomen of the child"),
    "Pediatric urinary tract": ("paediatric urinary tract", "pediatric kidney",
                                "urinary tract of the child"),
    "Pediatric scrotum": ("paediatric scrotum", "pediatric testis", "infant testis"),
    "Pediatric gynaecological pathology and infant breast": (
        "paediatric pelvis", "infant breast", "pediatric ovary", "neonatal breast bud"),
    "Pediatric head and neck": ("paediatric neck", "pediatric head and neck", "neck of the child"),
    "Neonatal brain and spine": ("neonatal brain", "neonatal head", "neonatal spine",
                                 "infant brain"),
    "Infant hip and knee": ("infant hip", "neonatal hip", "infant knee"),
    "Pediatric thorax": ("paediatric chest", "pediatric thorax", "chest of the child"),
    "Peripheral arteries": ("peripheral artery", "common femoral artery", "popliteal artery",
                            "superficial femoral artery"),
    "Peripheral veins": ("peripheral vein", "femoral vein", "great saphenous vein",
                         "popliteal vein"),
    "Dialysis fistula": ("dialysis fistula", "arteriovenous fistula", "AV fistula",
                         "dialysis access"),
}

# Body_system_level: written as an examination header.
SYSTEM_NAMES: dict[str, tuple[str, ...]] = {
    "Abdomen and retroperitoneum": ("abdominal ultrasound", "abdominal sonography",
                                    "abdomen and retroperitoneum"),
    "Urinary Tract and male reproductive system": (
        "genitourinary ultrasound", "urological ultrasound",
        "urinary tract and male reproductive system"),
    "Gynaecology": ("gynaecological ultrasound", "gynecologic sonography",
                    "pelvic gynaecological scan"),
    "Head and Neck": ("head and neck ultrasound", "head and neck sonography",
                      "neck ultrasound"),
    "Breast and Axilla": ("breast ultrasound", "breast and axilla", "breast sonography"),
    "Musculoskeletal Joints and Tendons": ("musculoskeletal ultrasound", "MSK ultrasound",
                                           "musculoskeletal sonography"),
    "Thorax": ("thoracic ultrasound", "chest ultrasound", "thoracic sonography"),
    "Pediatrics": ("paediatric ultrasound", "pediatric sonography", "paediatric examination"),
    "Peripheral vessels": ("peripheral vascular ultrasound", "peripheral vascular sonography",
                           "vascular Doppler study"),
}

# Diagnosis: the head noun of the finding. "normal appearance" has its own phrases.
DIAGNOSIS_NOUNS: dict[str, tuple[str, ...]] = {
    "nodule": ("nodule", "focal nodule"),
    "cyst": ("cyst", "cystic lesion"),
    "mass": ("mass", "mass lesion", "space-occupying lesion"),
    "fluid collection": ("fluid collection", "collection of fluid", "localized fluid collection",
                         "fluid accumulation"),
}
NORMAL_PHRASES: tuple[str, ...] = (
    "normal appearance", "normal sonographic appearance", "unremarkable", "no focal lesion",
    "no focal abnormality", "within normal limits")

# Descriptor adjectives per field and value ("of ..." / "with ..." forms follow the noun).
ADJECTIVES: dict[str, dict[str, tuple[str, ...]]] = {
    "Shape": {
        "round": ("round", "rounded", "spherical"),
        "oval": ("oval", "ovoid", "elliptical"),
        "lobulated": ("lobulated", "macrolobulated", "of lobulated contour"),
        "tubular/linear": ("tubular", "linear", "elongated tubular"),
        "nodular": ("nodular", "of nodular contour"),
        "flattened": ("flattened", "flat", "lenticular"),
        "irregular": ("irregular", "irregularly shaped", "of irregular shape"),
    },
    "Margins": {
        "well-defined": ("well-defined", "well-circumscribed", "sharply marginated",
                         "with smooth, sharp margins"),
        "ill-defined/indistinct": ("ill-defined", "poorly circumscribed", "with indistinct margins",
                                   "with blurred margins", "poorly defined"),
    },
    "Echogenicity": {
        "anechoic": ("anechoic", "echo-free"),
        "hypoechoic": ("hypoechoic", "hypoechogenic", "of low echogenicity"),
        "isoechoic": ("isoechoic", "of similar echogenicity to the surrounding tissue"),
        "hyperechoic": ("hyperechoic", "echogenic", "of increased echogenicity"),
        "mixed echogenicity": ("heterogeneously echogenic", "of mixed echogenicity",
                               "mixed-echogenicity"),
    },
}

# Noun phrases for the findings that follow "with ..." / "shows ...".
FINDING_NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "InternalCharacteristics": {
        "cystic components": ("cystic components", "cystic areas", "cystic change"),
        "calcifications": ("calcifications", "microcalcifications", "calcific foci"),
        "septations": ("septations", "internal septa", "thin septa"),
        "solid components": ("solid components", "solid elements", "solid areas"),
        "mixed cystic and solid mass": ("mixed cystic and solid components",
                                        "mixed cystic-solid content"),
        "complex cystic solid": ("complex cystic and solid content", "complex cystic-solid areas"),
    },
    "PosteriorAcoustics": {
        "enhancement": ("posterior acoustic enhancement", "posterior enhancement",
                        "increased through-transmission"),
        "shadowing": ("posterior acoustic shadowing", "posterior shadowing", "acoustic shadowing"),
    },
    "Vascularity": {
        "reduced/diminished": ("reduced vascularity", "diminished vascularity",
                               "decreased internal flow"),
        "normal/regular": ("normal vascularity", "regular vascular pattern", "normal flow"),
        "no": ("no vascularity", "no internal flow", "no detectable colour Doppler signal"),
        "increased": ("increased vascularity", "increased internal flow", "hypervascularity"),
        "indeterminate/inhomogeneous vascularity": ("inhomogeneous vascularity",
                                                    "indeterminate vascularity",
                                                    "heterogeneous vascular pattern"),
    },
}


def all_phrases() -> list[tuple[str, str, str]]:
    """Every (lower-cased phrase, field, value), longest phrase first (``mentions`` reads them)."""
    out: list[tuple[str, str, str]] = []
    out += [(p, "Organ_level", v) for v, ps in ORGAN_NAMES.items() for p in ps]
    out += [(p, "Body_system_level", v) for v, ps in SYSTEM_NAMES.items() for p in ps]
    out += [(p, "Diagnosis", v) for v, ps in DIAGNOSIS_NOUNS.items() for p in ps]
    out += [(p, "Diagnosis", "normal appearance") for p in NORMAL_PHRASES]
    for table in (ADJECTIVES, FINDING_NOUNS):
        out += [(_bare(p), f, v) for f, vals in table.items() for v, ps in vals.items() for p in ps]
    out = [(p.lower(), f, v) for p, f, v in out]  # matching ignores case
    out.sort(key=lambda t: -len(t[0]))
    return out


def _bare(phrase: str) -> str:
    """The words that name the value ("of lobulated contour" names it by "lobulated contour")."""
    for lead in ("of ", "with "):
        if phrase.startswith(lead):
            return phrase[len(lead):]
    return phrase
