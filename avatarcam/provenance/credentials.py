"""Content credentials: a signed C2PA manifest in every file AvatarCam renders.

C2PA is the standard that cameras, editors, platforms and browsers read to tell where a picture or a
video came from. Each file `avatarcam render` writes (and each recording of the live file sink)
carries a manifest, made and signed with the Content Authenticity Initiative's own library
(`c2pa-python`), that says:

- ``c2pa.actions``: the file was *created* (``c2pa.created``) by a trained model
  (digital source type ``trainedAlgorithmicMedia``), by AvatarCam and its version;
- ``c2pa.soft-binding``: the invisible watermark's 48-bit payload, so that a copy whose manifest
  was stripped (any re-encode drops it) can still be tied back to it;
- ``org.avatarcam.consent``: the consent record(s) of the portrait(s) shown, by id and sha256
  digest; the person's name only when the user opts in (``c2pa_subject_name``);
- an ingredient per portrait, by the sha256 of its pixels only: the picture itself is not embedded.

Where it goes: MP4 and MOV (ISO BMFF) and PNG hold the manifest inside the file, bound to it by a
hash of everything else. Matroska and WebM have no C2PA embedding (the library has no handler for
them), so their manifest is a sidecar ``NAME.c2pa`` next to the video, bound to the whole file by a
data hash: keep the two together.

Signing: with the certificate and key the user configures (``c2pa_cert``, ``c2pa_key``), or with the
installation's own chain, made on first use next to the installation's Ed25519 key (mode 0600, in
one file): a root certificate for the Ed25519 key itself (so the chain names the same installation as
the watermark and the consent records) issuing an ES256 signing certificate with the profile C2PA
requires (digitalSignature, the emailProtection extended key usage). No public trust list holds
such a root, so readers report the manifest *valid but from an untrusted signer*; that is the honest
answer for a certificate nobody vouched for. Nothing goes over the network: no timestamp authority
unless ``c2pa_tsa_url`` names one, no OCSP, no remote manifests.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from avatarcam import __version__
from avatarcam.config import Settings
from avatarcam.errors import OutputError

from .consent import ConsentRecord, installation_key, private_dir, write_private
from .watermark import Payload, installation_code

SIGNER_FILE = "c2pa_signer.pem"  # the installation's ES256 key and its certificate chain, one file
CREATED = "c2pa.created"
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR = "AvatarCam"
CONSENT_LABEL = "org.avatarcam.consent"
# Our watermark is not (yet) on C2PA's list of soft-binding algorithms, so it is named in our own
# reverse-domain namespace, with its version, as the specification asks of unlisted ones.
SOFT_BINDING_ALG = "org.avatarcam.watermark.v1"
# Containers with a C2PA embedding (by the name's extension) and their MIME types.
EMBEDDED = {".mp4": "video/mp4", ".mov": "video/quicktime", ".png": "image/png"}
SIDECAR_SUFFIX = ".c2pa"
CERT_YEARS = 10

# Offline always: never fetch a remote manifest or an OCSP answer. No thumbnail: a picture of the
# person inside the manifest is not needed to read it, and costs a JPEG encode per file.
_SDK_SETTINGS = {"builder": {"thumbnail": {"enabled": False}},
                 "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


def sdk_context() -> c2pa.Context:
    """The library's context with AvatarCam's settings (offline, no thumbnails)."""
    return c2pa.Context(settings=c2pa.Settings.from_dict(_SDK_SETTINGS))


def sidecar_path(path: Path) -> Path:
    """Where the manifest of a container without C2PA embedding goes: NAME.c2pa beside it."""
    return path.with_suffix(SIDECAR_SUFFIX)


def embeds(path: Path) -> bool:
    """True when the manifest goes inside the file, False when into a sidecar."""
    return path.suffix.lower() in EMBEDDED


# ---------------------------------------------------------------------------------------------
# The signer: the installation's chain, or the user's

@dataclass(frozen=True)
class SigningIdentity:
    """A private key (PEM) and its certificate chain (PEM, end entity first)."""

    key_pem: bytes
    chain_pem: bytes
    alg: c2pa.C2paSigningAlg
    tsa_url: str | None = None

    def signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(self.alg, self.chain_pem, self.key_pem, self.tsa_url)
        return c2pa.Signer.from_info(info)


def _alg_for(key) -> c2pa.C2paSigningAlg:
    """The C2PA signing algorithm a private key signs with."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": c2pa.C2paSigningAlg.ES256, "secp384r1": c2pa.C2paSigningAlg.ES384,
                    "secp521r1": c2pa.C2paSigningAlg.ES512}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    raise OutputError(f"C2PA cannot sign with a {type(key).__name__}: use an EC P-256/384/521, Ed25519 or RSA key")


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def identity_from_pem(key_pem: bytes, chain_pem: bytes, what: str, tsa_url: str | None = None) -> SigningIdentity:
    """Check that the chain's first certificate belongs to the key; OutputError saying what is wrong."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        chain = x509.load_pem_x509_certificates(chain_pem)
    except (ValueError, TypeError) as exc:
        raise OutputError(f"the C2PA signing key or certificate in {what} cannot be read ({exc}); "
                          f"give an unencrypted PEM key and a PEM certificate chain") from None
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise OutputError(f"the first certificate in {what} is not the signing key's: put the key's own "
                          f"certificate first, then the certificates that issued it")
    return SigningIdentity(key_pem, chain_pem, _alg_for(key), tsa_url)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, GENERATOR)])


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)


def make_installation_chain(root_key: ed25519.Ed25519PrivateKey, now: datetime.datetime | None = None
                            ) -> tuple[bytes, bytes]:
    """A new ES256 key (PEM) and its chain (PEM): an end-entity certificate issued by a root for
    `root_key`, with the profile C2PA validators require of a signing certificate."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    code = installation_code(root_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw).hex())
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=365 * CERT_YEARS)
    root_name = _name(f"AvatarCam installation {code:06x}")
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, None))
    key = ec.generate_private_key(ec.SECP256R1())
    # C2PA's certificate profile: not a CA, digitalSignature (critical), an allowed extended key
    # usage (emailProtection is the one every validator takes), key identifiers on both sides.
    leaf = (x509.CertificateBuilder().subject_name(_name(f"AvatarCam signer {code:06x}")).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, None))  # Ed25519 hashes internally: no separate digest
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pem = serialization.Encoding.PEM
    return key_pem, leaf.public_bytes(pem) + root.public_bytes(pem)


def _usable_installation_identity(data: bytes, root_key: ed25519.Ed25519PrivateKey,
                                  tsa_url: str | None) -> SigningIdentity | None:
    """The identity in the installation's signer file, or None when it must be made again: damaged
    (files it signed keep their own copy of the certificates), expired, or made for another Ed25519
    key (the key was replaced: it would name the wrong installation)."""
    key_end = data.find(b"-----END PRIVATE KEY-----\n") + len(b"-----END PRIVATE KEY-----\n")
    try:
        identity = identity_from_pem(data[:key_end], data[key_end:], SIGNER_FILE, tsa_url)
        chain = x509.load_pem_x509_certificates(identity.chain_pem)
    except (OutputError, ValueError):
        return None
    fresh = chain[0].not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    ours = _public_der(chain[-1].public_key()) == _public_der(root_key.public_key())
    return identity if fresh and ours else None


def installation_identity(settings: Settings) -> SigningIdentity:
    """This installation's C2PA signer: key and chain in one file (mode 0600) next to the Ed25519
    key, made on first use and made again when its certificate has expired."""
    path = Path(settings.data_dir) / SIGNER_FILE
    root_key = installation_key(settings)
    if path.exists():
        identity = _usable_installation_identity(path.read_bytes(), root_key, settings.c2pa_tsa_url)
        if identity is not None:
            return identity
    key_pem, chain_pem = make_installation_chain(root_key)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    write_private(tmp, key_pem + chain_pem)
    os.replace(tmp, path)  # whole or not at all: a reader never sees half a key
    return SigningIdentity(key_pem, chain_pem, c2pa.C2paSigningAlg.ES256, settings.c2pa_tsa_url)


def signing_identity(settings: Settings) -> SigningIdentity:
    """The user's certificate and key when both are configured, else the installation's own."""
    if (settings.c2pa_cert is None) != (settings.c2pa_key is None):
        raise OutputError("set both c2pa_cert and c2pa_key (AVATARCAM_C2PA_CERT, AVATARCAM_C2PA_KEY), "
                          "or neither to sign with this installation's own certificate")
    if settings.c2pa_cert is not None and settings.c2pa_key is not None:
        try:
            key_pem, chain_pem = Path(settings.c2pa_key).read_bytes(), Path(settings.c2pa_cert).read_bytes()
        except OSError as exc:
            raise OutputError(f"cannot read the configured C2PA certificate or key: {exc}") from None
        return identity_from_pem(key_pem, chain_pem, f"{settings.c2pa_cert} / {settings.c2pa_key}",
                                 settings.c2pa_tsa_url)
    return installation_identity(settings)


# ---------------------------------------------------------------------------------------------
# The manifest

def record_digest(record: ConsentRecord) -> str:
    """sha256 of the consent record as signed: its canonical JSON, signature included."""
    body = json.dumps(asdict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def payload_bytes(payload: Payload) -> bytes:
    """The watermark's 48 bits as 6 bytes: installation then record, big-endian."""
    return ((payload.installation << 24) | payload.record).to_bytes(6, "big")


@dataclass
class Credentials:
    """What a file's manifest says: the portraits shown (their consent records and the watermark
    payload each was marked with). A live recording notes each profile put on air (`note`)."""

    shown: list[tuple[ConsentRecord, Payload]] = field(default_factory=list)
    name_subject: bool = False  # the person's name goes into the manifest only when opted in

    def note(self, record: ConsentRecord, payload: Payload) -> None:
        if all(r.record_id != record.record_id for r, _ in self.shown):
            self.shown.append((record, payload))

    def manifest(self, title: str) -> dict:
        """The manifest definition for c2pa.Builder."""
        agent = {"name": GENERATOR, "version": __version__}
        consent = []
        for record, payload in self.shown:
            entry = {"record_id": record.record_id, "record_sha256": record_digest(record),
                     "relation": record.relation, "portrait_sha256": record.portrait_sha256,
                     "created": record.created, "watermark_payload": payload_bytes(payload).hex()}
            if self.name_subject:
                entry["subject"] = record.subject
            consent.append(entry)
        blocks = [{"scope": {}, "value": base64.b64encode(payload_bytes(p)).decode()} for _, p in self.shown]
        assertions = [{"label": "c2pa.actions", "data": {"actions": [
            {"action": CREATED, "digitalSourceType": TRAINED, "softwareAgent": agent}]}}]
        if blocks:
            assertions.append({"label": "c2pa.soft-binding", "data": {"alg": SOFT_BINDING_ALG, "blocks": blocks}})
        assertions.append({"label": CONSENT_LABEL, "data": {"records": consent}})
        # Each portrait as an ingredient by the sha256 of its pixels only (consent.portrait_digest):
        # the picture is not embedded, so the manifest gives nobody the face.
        ingredients = [{"title": "portrait", "format": "image/png", "relationship": "inputTo",
                        "instance_id": f"avatarcam:portrait:sha256:{record.portrait_sha256}"}
                       for record, _ in self.shown]
        return {"claim_generator_info": [agent], "title": title, "assertions": assertions,
                "ingredients": ingredients}


class ContentSigner:
    """Signs finished files with one identity: ``signer.sign_file(tmp, final)``, ``signer.sign_png(data)``."""

    def __init__(self, identity: SigningIdentity, credentials: Credentials, settings: Settings) -> None:
        self.identity = identity
        self.credentials = credentials
        self.settings = settings
        self._context = sdk_context()

    @classmethod
    def for_settings(cls, settings: Settings, credentials: Credentials) -> ContentSigner:
        """Signs with the configured or installation identity; fails now, before any rendering."""
        return cls(signing_identity(settings), credentials, settings)

    def show(self, profile) -> None:
        """Name one more profile (a profiles.Profile put on air) in the files signed from now on."""
        from .stamp import payload_for

        self.credentials.note(profile.consent, payload_for(profile.consent, self.settings))

    def _builder(self, title: str) -> c2pa.Builder:
        return c2pa.Builder(self.credentials.manifest(title), self._context)

    def sign_png(self, png: bytes, title: str) -> bytes:
        """A PNG file's bytes with the manifest embedded."""
        out = io.BytesIO()
        try:
            self._builder(title).sign(self.identity.signer(), EMBEDDED[".png"], io.BytesIO(png), out)
        except c2pa.C2paError as exc:
            raise OutputError(f"signing {title} with content credentials failed: {exc}") from None
        return out.getvalue()

    def sign_file(self, source: Path, final: Path) -> list[Path]:
        """Put the complete, unsigned file `source` at `final` with its manifest; returns the paths
        written. MP4/MOV: signed into a temp file beside `final`, then renamed over it. MKV/WebM:
        the video is renamed unchanged and its manifest written to the sidecar first. Either way
        nothing half-written is left under a final name on error, and `source` is gone."""
        temp = final.with_name(f".{final.name}.{os.getpid()}.signed.part")
        try:
            if embeds(final):
                with open(source, "rb") as src, open(temp, "w+b") as dst:
                    self._builder(final.name).sign(self.identity.signer(), EMBEDDED[final.suffix.lower()], src, dst)
                os.chmod(temp, os.stat(source).st_mode & 0o777)
                os.replace(temp, final)
                os.unlink(source)
                return [final]
            builder = self._builder(final.name)
            builder.set_no_embed()
            with open(source, "rb") as src:
                # "application/octet-stream": the library's generic handler, which binds the manifest
                # to the whole file by a data hash (c2pa.hash.data) and leaves the file unchanged.
                manifest = builder.sign(self.identity.signer(), "application/octet-stream", src, io.BytesIO())
            write_private(temp, manifest)
            os.chmod(temp, os.stat(source).st_mode & 0o777)
            sidecar = sidecar_path(final)
            os.replace(temp, sidecar)
            try:
                os.replace(source, final)
            except OSError:
                sidecar.unlink(missing_ok=True)
                raise
            return [final, sidecar]
        except c2pa.C2paError as exc:
            raise OutputError(f"signing {final} with content credentials failed: {exc}") from None
        finally:
            temp.unlink(missing_ok=True)


def credentials_for(records: Iterable[tuple[ConsentRecord, Payload]], settings: Settings) -> Credentials:
    """Credentials naming these portraits, with the subject's name only if the settings opt in."""
    credentials = Credentials(name_subject=settings.c2pa_subject_name)
    for record, payload in records:
        credentials.note(record, payload)
    return credentials


def content_signer(profile, settings: Settings) -> ContentSigner:
    """The signer for files showing `profile` (a profiles.Profile), made before any rendering so a
    bad certificate fails at once."""
    signer = ContentSigner.for_settings(settings, credentials_for([], settings))
    signer.show(profile)
    return signer


# ---------------------------------------------------------------------------------------------
# Reading a file's content credentials back (`avatarcam verify`)

# Validation codes that say "nobody vouched for this signer", not "this file changed": a self-made
# certificate (or any outside the trust lists) is valid but untrusted, and said so.
UNTRUSTED = {"signingCredential.untrusted"}
READ_TYPES = {**EMBEDDED, ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".m4v": "video/mp4",
              ".tif": "image/tiff", ".tiff": "image/tiff", ".gif": "image/gif", ".avif": "image/avif"}


@dataclass
class ManifestReport:
    """What a file's C2PA manifest says and whether it holds.

    `state`: "valid" (signature, certificate chain and hashes hold, signer trusted), "untrusted"
    (all that holds, but no trust list vouches for the signer: AvatarCam's self-made chain),
    "invalid" (the file or the manifest changed after signing, or the manifest is broken), or
    "absent" (no manifest inside the file nor beside it).
    """

    state: str
    where: str = ""  # "embedded" or the sidecar's name
    generator: str = ""  # the claim generator, e.g. "AvatarCam 0.1.0"
    signer: str = ""  # the signing certificate's common name and issuer
    source_type: str = ""  # the digitalSourceType of its c2pa.created action
    soft_bindings: list[str] = field(default_factory=list)  # watermark payloads, 12 hex digits each
    consent_records: list[str] = field(default_factory=list)  # consent record ids
    problems: list[str] = field(default_factory=list)  # the failed checks, code: explanation

    @property
    def present(self) -> bool:
        return self.state != "absent"

    @property
    def holds(self) -> bool:
        """Signature and hashes hold (trusted or not)."""
        return self.state in ("valid", "untrusted")

    @property
    def by_avatarcam(self) -> bool:
        return self.generator.split(" ")[0] == GENERATOR

    @property
    def generated(self) -> bool:
        """The manifest declares the content made by a trained model."""
        return self.source_type == TRAINED


def _report(reader: c2pa.Reader, where: str) -> ManifestReport:
    manifest = reader.get_active_manifest() or {}
    results = (reader.get_validation_results() or {}).get("activeManifest") or {}
    failures = [f"{f['code']}: {f.get('explanation', '')}" for f in results.get("failure", [])
                if f["code"] not in UNTRUSTED]
    untrusted = any(f["code"] in UNTRUSTED for f in results.get("failure", []))
    if reader.get_validation_state() == "Invalid" or failures:
        state = "invalid"
    else:
        state = "untrusted" if untrusted else "valid"
    report = ManifestReport(state, where, problems=failures)
    generators = manifest.get("claim_generator_info") or [{}]
    report.generator = f"{generators[0].get('name', '')} {generators[0].get('version', '')}".strip()
    info = manifest.get("signature_info") or {}
    report.signer = f"{info.get('common_name', '?')} (issued by {info.get('issuer', '?')})"
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            created = [a for a in data.get("actions", []) if a.get("action") == CREATED]
            report.source_type = created[0].get("digitalSourceType", "") if created else ""
        elif label == "c2pa.soft-binding" and data.get("alg") == SOFT_BINDING_ALG:
            report.soft_bindings = [base64.b64decode(b["value"]).hex() for b in data.get("blocks", [])]
        elif label == CONSENT_LABEL:
            report.consent_records = [r.get("record_id", "") for r in data.get("records", [])]
    return report


def read_credentials(path: Path) -> ManifestReport:
    """The manifest inside `path` or in its sidecar NAME.c2pa; never raises for a broken one."""
    context = sdk_context()
    mime = READ_TYPES.get(path.suffix.lower())
    try:
        if mime is not None:
            with open(path, "rb") as stream:
                reader = c2pa.Reader.try_create(mime, stream, context=context)
                if reader is not None:
                    return _report(reader, "embedded")
        sidecar = sidecar_path(path)
        if sidecar.exists() and sidecar != path:
            with open(path, "rb") as stream:
                reader = c2pa.Reader("application/octet-stream", stream, sidecar.read_bytes(), context=context)
                return _report(reader, sidecar.name)
    except c2pa.C2paError as exc:  # the manifest is there but cannot be read: as good as tampered
        return ManifestReport("invalid", problems=[f"unreadable manifest: {exc}"])
    return ManifestReport("absent")
