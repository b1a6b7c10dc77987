// An independent reader of C2PA content credentials for tests/test_credentials.py: the Content
// Authenticity Initiative's JavaScript package (@contentauth/c2pa-wasm), run by Node, not the Python
// library that signed the file. Prints the validation state, the status codes and the active
// manifest as JSON.
//
//   AVATARCAM_C2PA_WASM=<dir of the npm package> node tests/c2pa_validate.mjs MIME FILE [SIDECAR]
//
// .ci/run installs the package into a cache folder outside the repository and sets the variable.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.AVATARCAM_C2PA_WASM;
if (!dir) {
  console.error("set AVATARCAM_C2PA_WASM to the folder of the @contentauth/c2pa-wasm npm package");
  process.exit(2);
}
const { initSync, WasmReader } = await import(pathToFileURL(join(dir, "pkg", "c2pa.js")).href);
initSync({ module: readFileSync(join(dir, "pkg", "c2pa_bg.wasm")) });

const [mime, file] = process.argv.slice(2);
// Offline, as AvatarCam signs: no remote manifests, no OCSP.
const context = JSON.stringify({ verify: { remote_manifest_fetch: false, ocsp_fetch: false } });
const reader = await WasmReader.fromBytes(mime, readFileSync(file), context);
const store = JSON.parse(reader.json());
console.log(JSON.stringify({
  validation_state: store.validation_state,
  validation_status: store.validation_status ?? [],
  active_manifest: reader.activeManifest(),
}));
