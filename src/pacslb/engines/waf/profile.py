"""The PACS profile: what ModSecurity with the OWASP CRS 3.3 must let through for DICOMweb and imaging viewers.

Each entry is one thing imaging traffic does that the Core Rule Set, untuned, takes for an attack (measured on
Debian 12's packages: ENGINES.md, tests/engine/waf/). The renderer writes each as a rule scoped to the
policy's `dicomweb_paths`; docs/waf.md lists them with the same reasons. Nothing here removes a rule for the
whole request: the SQL injection, XSS, traversal and command injection rules keep inspecting every parameter,
header and JSON body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The content types DICOMweb sends (PS3.18 8.7): STOW-RS bodies are multipart/related of application/dicom,
# application/dicom+json or application/dicom+xml parts; CRS 3.3 allows none of them by default (rule 920420).
DICOM_CONTENT_TYPES = ("application/dicom", "application/dicom+json", "application/dicom+xml", "multipart/related")


@dataclass(frozen=True)
class ProfileRule:
    key: str
    why: str


PACS_PROFILE: tuple[ProfileRule, ...] = (
    ProfileRule(
        "content-types",
        "DICOMweb's content types (application/dicom, application/dicom+json, application/dicom+xml, "
        "multipart/related) are added to CRS's allowed request content types; otherwise rule 920420 "
        "scores every STOW-RS upload",
    ),
    ProfileRule(
        "stow-body",
        "a STOW-RS upload (POST, Content-Type multipart/related with type application/dicom) is streamed to "
        "the archive without ModSecurity reading its body: DICOM is binary (pixel data matches attack "
        "patterns by chance), uploads reach gigabytes (ModSecurity buffers an inspected body, and answers "
        "413 above its no-files limit of 128 KiB for multipart/related), and the archive parses DICOM "
        "itself. Its headers and URL stay inspected",
    ),
    ProfileRule(
        "stow-content-type",
        "rule 921422 (paranoia 2) reads 'multipart/related; type=\"application/dicom\"' as two content "
        "types in one header (a request smuggling sign) and blocks every STOW-RS upload: removed for "
        "STOW-RS requests only",
    ),
    ProfileRule(
        "dicom-json",
        "not an exclusion but the opposite: ModSecurity parses only application/json bodies as JSON, so a "
        "DICOM JSON body (application/dicom+json: STOW-RS metadata, QIDO-RS POST searches) is parsed as JSON "
        "too, and every value in it is inspected like a parameter",
    ),
    ProfileRule(
        "accept",
        "rule 920600 refuses Accept headers with parameters other than charset; WADO-RS asks for frames "
        "with 'multipart/related; type=\"application/octet-stream\"; transfer-syntax=*' (PS3.18 8.7.3.5): "
        "the rule does not look at the Accept header under the DICOMweb paths",
    ),
    ProfileRule(
        "numeric-host",
        "hospital clients reach a VIP by its IP address (the True PACS guide configures them so): rule 920350 "
        "(Host header is a numeric IP address, score 3) would put every such request 2 points from blocking",
    ),
    ProfileRule(
        "user-agent",
        "modalities, DICOM routers and scripts send DICOMweb requests without a User-Agent: rule 920320 "
        "(score 2) with 920350 blocks them at the default threshold",
    ),
    ProfileRule(
        "qido-values",
        "QIDO-RS matches on DICOM attribute values, which look like what some CRS rules score: person names "
        "separate their components with '^' (Smith^John^^Dr., read by 942130 at paranoia 2 as a SQL XOR "
        "tautology), descriptions hold wildcards and slashes (*HEAD* W/O CONTRAST, read by 932200 at "
        "paranoia 2 as a shell wildcard bypass), names hold apostrophes and letters beyond ASCII (O'Brien*, "
        "Dürer^Albrecht: the paranoia 3-4 rules on special and restricted characters 920272, 920273, "
        "942420, 942421, 942430-942432, 942460). These rules are removed for the DICOM attribute "
        "parameters of QIDO only (PatientName and 31 other keywords, or tags such as 00100010); "
        "libinjection (942100), the other SQL injection rules, XSS, traversal and command injection rules "
        "still inspect them, and every rule still inspects every other parameter",
    ),
    ProfileRule(
        "wado-uid-paths",
        "a WADO-RS retrieval whose whole URL is made of DICOM UIDs and frame numbers, with no query string and no "
        "cookie (GET .../studies/{uid}/series/{uid}/instances/{uid}/frames/1,2), is not inspected: such a URL "
        "carries nothing an attack could hide in, and the Core Rule Set's header rules cost about 3 ms of CPU "
        "per request, which a viewer pays on each of the hundreds of frames of a study. Its headers go "
        "uninspected (a client cannot smuggle data to the archive through them that the archive reads as "
        "DICOM); a request with a cookie or a query string is inspected as any other",
    ),
    ProfileRule(
        "wado-uri",
        "WADO-URI's contentType and transferSyntax parameters carry a media type or UID "
        "(contentType=application%2Fdicom): rule 920273 (paranoia 4, restricted characters) is removed for "
        "those two parameters only",
    ),
)

# CRS rule files the PACS profile does not load (docs/waf.md, "Rule files"): each costs CPU on every request
# (bench/README.md) and inspects for something a DICOMweb service does not have. The SQL injection, XSS, LFI, RFI,
# RCE, protocol, method, scanner, session fixation and Java (Log4Shell: Java archives) files stay.
PACS_SKIPPED_RULE_FILES: tuple[ProfileRule, ...] = (
    ProfileRule(
        "REQUEST-903.",
        "the application exclusion packages (Drupal, WordPress, Nextcloud, DokuWiki, cPanel, XenForo): they do nothing "
        "unless a site enables one for that application, and a PACS is none of them",
    ),
    ProfileRule(
        "REQUEST-933-APPLICATION-ATTACK-PHP",
        "PHP injection: DICOMweb archives and viewers do not run PHP (Java, C++, .NET archives; static JavaScript "
        "viewers); a PHP portal behind the same VIP needs `profile: none`",
    ),
    ProfileRule(
        "REQUEST-934-APPLICATION-ATTACK-NODEJS",
        "Node.js injection: as for PHP, no DICOMweb archive runs server-side JavaScript",
    ),
    ProfileRule(
        "RESPONSE-95",
        "the outbound data leakage files 950-954 (SQL, Java, PHP, IIS errors in the response body): the WAF tier never "
        "reads response bodies (SecResponseBodyAccess Off: they are DICOM images and DICOM JSON, megabytes each), so "
        "these rules have nothing to inspect but still run on every request; 959 and 980 stay",
    ),
)


def pacs_rule_files(all_files: list[str]) -> list[str]:
    """The CRS rule files (names, in CRS's order) the PACS profile includes: all but PACS_SKIPPED_RULE_FILES
    (RESPONSE-959, the outbound blocking evaluation, is not one of the 950-954 data leakage files)."""
    skipped = tuple(entry.key for entry in PACS_SKIPPED_RULE_FILES)
    return [name for name in sorted(all_files) if not name.startswith(skipped) or name.startswith("RESPONSE-959")]


# A WADO-RS URL of UIDs only (wado-uid-paths), after one of the policy's DICOMweb paths.
UID = r"[0-9][0-9.]{0,63}"
WADO_UID_PATH = (
    rf"/studies/{UID}(?:/series/{UID}(?:/instances/{UID}(?:/frames/[0-9]{{1,6}}(?:,[0-9]{{1,6}}){{0,255}})?)?)?"
    r"(?:/metadata|/bulkdata/[0-9A-Fa-f]{8})?$"
)


# stow-body: what a STOW-RS upload's Content-Type looks like (lower-cased first): ModSecurity turns body access off
# for it, and HAProxy sends its body straight to the archive after a header-only verdict (engines/haproxy/waf.py)
STOW_CONTENT_TYPE = r'^multipart/related\s*;.*\btype\s*=\s*"?application/dicom"?(?:;|\s|$)'


def dicomweb_prefix_regex(dicomweb_paths: list[str]) -> str:
    """'The path begins with one of the policy's DICOMweb paths'."""
    return "^(?:" + "|".join(re.escape(p) for p in dicomweb_paths) + ")"


def wado_uid_regex(dicomweb_paths: list[str]) -> str:
    """The whole-URL pattern of wado-uid-paths: a DICOMweb path, up to four plain segments (a DICOMweb base such as
    /dicom-web or /pacs/rs: letters, digits, '-' and '_' only), then UIDs only."""
    prefixes = "|".join(re.escape(p.rstrip("/")) for p in dicomweb_paths)
    return rf"^(?:{prefixes})(?:/[A-Za-z0-9_-]{{1,64}}){{0,4}}{WADO_UID_PATH}"


# rules that legitimate imaging clients trip on every request (numeric-host, user-agent)
CLIENT_RULES = (920350, 920320)
# QIDO-RS matching parameters are DICOM keywords (UpperCamelCase) or tags (8 hex digits), and the rules the PACS
# profile removes for their values (qido-values).
# ModSecurity matches parameter names without regard to case and splits target lists on '|', so the keywords are
# listed one by one (PS3.18 table 10.6.1-5, and the attributes viewers commonly search on) and tags are one pattern.
QIDO_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName", "StudyInstanceUID",
    "StudyID", "StudyDescription", "InstitutionName", "NameOfPhysiciansReadingStudy", "Modality", "SeriesInstanceUID",
    "SeriesNumber", "SeriesDescription", "BodyPartExamined", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "OperatorsName", "PerformingPhysicianName", "StationName", "SOPClassUID",
    "SOPInstanceUID", "InstanceNumber", "ContentDate", "ContentTime",
)  # fmt: skip
QIDO_TAG = r"/^[0-9a-f]{8}$/"
QIDO_VALUE_RULES = (942130, 932200, 920272, 920273, 942420, 942421, 942430, 942431, 942432, 942460)
WADO_URI_PARAMETERS = ("contentType", "transferSyntax")
WADO_URI_RULES = (920273,)
